"""The driver contract (providers/base.py), one suite for every driver (``driver_case``).

``sim`` always runs; ``libvirt`` runs real QEMU domains when libvirt is available.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hotdesk.domain.errors import PermanentError
from hotdesk.domain.names import TAG_BROKER, TAG_DESKTOP, TAG_POOL, desktop_tags
from hotdesk.providers.base import (
    ConsoleEndpoint,
    CreateRequest,
    DeleteProgress,
    Instance,
    InstanceRef,
    InstanceStatus,
    PowerAction,
    Provider,
    ProviderHealth,
)


def request_for(case: Any, suffix: str, *, desktop_id: str | None = None) -> CreateRequest:
    """A create request tagged for this case's broker."""
    name = case.name(suffix)
    return CreateRequest(
        name=name,
        display_name=f"Contract desktop {suffix}",
        tags=desktop_tags(
            broker_id=case.owner, pool_id="pool-contract", desktop_id=desktop_id or uuid.uuid4().hex
        ),
        template=case.template,
    )


async def names_listed(provider: Provider, owner: str) -> set[str]:
    return {inst.ref.name for inst in await provider.list_desktops(owner=owner)}


def test_driver_satisfies_the_protocol(driver_case: Any) -> None:
    provider = driver_case.provider
    assert isinstance(provider, Provider)
    assert isinstance(provider.kind, str) and provider.kind
    provider.config_model.model_json_schema()  # settings are documented by a pydantic model


async def test_check_is_ok(driver_case: Any) -> None:
    health = await driver_case.provider.check()
    assert isinstance(health, ProviderHealth)
    assert health.ok is True, health.detail
    assert isinstance(health.detail, str)


async def test_create_returns_the_instance_with_its_tags(driver_case: Any) -> None:
    req = request_for(driver_case, "a")
    inst = await driver_case.provider.create_desktop(req)
    assert isinstance(inst, Instance)
    assert inst.ref.name == req.name
    assert inst.tags == req.tags
    assert isinstance(inst.status, InstanceStatus)


async def test_create_is_idempotent_by_name(driver_case: Any) -> None:
    provider = driver_case.provider
    req = request_for(driver_case, "idem")
    first = await provider.create_desktop(req)
    again = await provider.create_desktop(req)
    assert again.ref.name == first.ref.name
    if first.ref.platform_id is not None:
        assert again.ref.platform_id == first.ref.platform_id  # the same VM, not a second one
    listed = [
        i for i in await provider.list_desktops(owner=driver_case.owner) if i.ref.name == req.name
    ]
    assert len(listed) == 1


async def test_create_same_name_for_another_desktop_is_permanent_error(driver_case: Any) -> None:
    provider = driver_case.provider
    req = request_for(driver_case, "taken", desktop_id="desktop-one")
    first = await provider.create_desktop(req)
    other_tags = {**req.tags, TAG_DESKTOP: "desktop-two"}
    with pytest.raises(PermanentError):
        await provider.create_desktop(CreateRequest(**{**req.__dict__, "tags": other_tags}))
    still = await provider.get_desktop(first.ref)
    assert still is not None and still.tags == req.tags  # the first desktop's VM is untouched


async def test_get_unknown_returns_none(driver_case: Any) -> None:
    provider = driver_case.provider
    assert await provider.get_desktop(InstanceRef(name=driver_case.name("never"))) is None
    assert (
        await provider.get_desktop(
            InstanceRef(name=driver_case.name("never2"), platform_id="no-such-id")
        )
        is None
    )


async def test_get_finds_by_name_and_by_returned_ref(driver_case: Any) -> None:
    provider = driver_case.provider
    req = request_for(driver_case, "get")
    inst = await provider.create_desktop(req)
    by_ref = await provider.get_desktop(inst.ref)
    by_name = await provider.get_desktop(InstanceRef(name=req.name))
    assert by_ref is not None and by_name is not None
    assert by_ref.ref.name == by_name.ref.name == req.name
    assert by_ref.tags == by_name.tags == req.tags


async def test_list_round_trips_tags_and_filters_by_owner(driver_case: Any) -> None:
    provider = driver_case.provider
    mine = [request_for(driver_case, f"mine{i}") for i in range(2)]
    for req in mine:
        await provider.create_desktop(req)
    other_owner = f"other-broker-{uuid.uuid4().hex[:6]}"
    foreign_name = driver_case.name("foreign")
    foreign_tags = desktop_tags(broker_id=other_owner, pool_id="p-x", desktop_id="d-x")
    await driver_case.inject_foreign(foreign_name, foreign_tags)

    listed = {i.ref.name: i for i in await provider.list_desktops(owner=driver_case.owner)}
    for req in mine:
        assert listed[req.name].tags == req.tags  # exactly: nothing added, nothing lost
    assert foreign_name not in listed
    assert all(i.tags.get(TAG_BROKER) == driver_case.owner for i in listed.values())

    theirs = {i.ref.name: i for i in await provider.list_desktops(owner=other_owner)}
    assert set(theirs) == {foreign_name}
    assert theirs[foreign_name].tags == foreign_tags
    assert {TAG_BROKER, TAG_POOL, TAG_DESKTOP} <= set(theirs[foreign_name].tags)

    assert await provider.list_desktops(owner=f"nobody-{uuid.uuid4().hex[:6]}") == []


async def test_delete_is_idempotent_and_leaves_nothing(driver_case: Any) -> None:
    provider = driver_case.provider
    req = request_for(driver_case, "del")
    inst = await provider.create_desktop(req)
    progress = await provider.delete_desktop(inst.ref)
    assert isinstance(progress, DeleteProgress)
    assert progress.done is True
    assert await provider.get_desktop(inst.ref) is None
    assert await provider.get_desktop(InstanceRef(name=req.name)) is None
    assert req.name not in await names_listed(provider, driver_case.owner)
    again = await provider.delete_desktop(inst.ref)  # a missing VM: success
    assert again.done is True
    never = await provider.delete_desktop(InstanceRef(name=driver_case.name("never-made")))
    assert never.done is True


async def test_delete_only_touches_the_named_vm(driver_case: Any) -> None:
    provider = driver_case.provider
    keep, drop = request_for(driver_case, "keep"), request_for(driver_case, "drop")
    await provider.create_desktop(keep)
    dropped = await provider.create_desktop(drop)
    await provider.delete_desktop(dropped.ref)
    assert await provider.get_desktop(InstanceRef(name=keep.name)) is not None
    assert keep.name in await names_listed(provider, driver_case.owner)


async def test_a_deleted_name_can_be_created_again(driver_case: Any) -> None:
    provider = driver_case.provider
    req = request_for(driver_case, "reuse")
    first = await provider.create_desktop(req)
    await provider.delete_desktop(first.ref)
    second = await provider.create_desktop(req)
    assert second.ref.name == req.name
    assert await provider.get_desktop(second.ref) is not None


async def test_power_cycle(driver_case: Any) -> None:
    provider = driver_case.provider
    inst = await provider.create_desktop(request_for(driver_case, "power"))
    await driver_case.wait_ready(inst.ref)
    running = await provider.get_desktop(inst.ref)
    assert running is not None and running.ready and running.status is InstanceStatus.RUNNING

    await provider.power(inst.ref, PowerAction.OFF)
    off = await provider.get_desktop(inst.ref)
    assert off is not None
    assert off.status is InstanceStatus.STOPPED
    assert off.ready is False

    await provider.power(inst.ref, PowerAction.ON)
    await driver_case.wait_ready(inst.ref)

    for action in (PowerAction.RESTART, PowerAction.FORCE_RESTART):
        await provider.power(inst.ref, action)
        await driver_case.wait_ready(inst.ref)
        after = await provider.get_desktop(inst.ref)
        assert after is not None and after.status is InstanceStatus.RUNNING, action


async def test_power_on_a_running_desktop_keeps_it_running(driver_case: Any) -> None:
    provider = driver_case.provider
    inst = await provider.create_desktop(request_for(driver_case, "on-twice"))
    await driver_case.wait_ready(inst.ref)
    await provider.power(inst.ref, PowerAction.ON)
    await driver_case.wait_ready(inst.ref)


async def test_console_and_console_log(driver_case: Any) -> None:
    provider = driver_case.provider
    inst = await provider.create_desktop(request_for(driver_case, "console"))
    await driver_case.wait_ready(inst.ref)
    endpoint = await provider.console(inst.ref)
    assert isinstance(endpoint, ConsoleEndpoint)
    assert isinstance(endpoint.protocol, str) and endpoint.protocol
    if endpoint.protocol in ("vnc", "spice"):
        assert endpoint.port is not None and endpoint.port > 0
    text = await provider.console_log(inst.ref)
    assert isinstance(text, str)
    assert text.strip(), "a booted desktop has something in its console log"


@pytest.mark.parametrize("call", ["power", "console", "console_log"])
async def test_operations_on_a_missing_vm_are_permanent_errors(driver_case: Any, call: str) -> None:
    provider = driver_case.provider
    ref = InstanceRef(name=driver_case.name(f"missing-{call}"))
    with pytest.raises(PermanentError):
        if call == "power":
            await provider.power(ref, PowerAction.ON)
        elif call == "console":
            await provider.console(ref)
        else:
            await provider.console_log(ref)
