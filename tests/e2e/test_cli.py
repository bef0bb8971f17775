"""The ``hotdesk`` command end to end: a real ``hotdesk serve`` and the CLI as subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.brokers import Broker, clean_env, free_port, hotdesk_command, start_broker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab.yaml"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """``hotdesk serve`` on a free port with a fresh data directory and the sim demo pool."""
    env = clean_env(
        HOTDESK_DATA_DIR=str(tmp_path_factory.mktemp("hotdesk-data")),
        HOTDESK_API__HOST="127.0.0.1",
        HOTDESK_API__PORT=str(free_port()),
        HOTDESK_DEMO="true",
        HOTDESK_DEMO_PLATFORM="sim",
        PYTHONUNBUFFERED="1",
    )
    server = start_broker(env, password=True)
    try:
        yield server
    finally:
        server.kill()


def hotdesk(
    *args: str, url: str, token: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI against a broker."""
    env = clean_env(HOTDESK_URL=url, **({"HOTDESK_TOKEN": token} if token else {}))
    return subprocess.run(
        [*hotdesk_command(), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def token(broker: Broker) -> str:
    """An admin token obtained with ``hotdesk login`` (password on stdin)."""
    login = ("login", "--user", "admin", "--password-stdin")
    done = hotdesk(*login, url=broker.url, stdin=broker.password + "\n")
    assert done.returncode == 0, done.stderr
    assert "export HOTDESK_TOKEN=" in done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def first_apply(broker: Broker, token: str) -> subprocess.CompletedProcess[str]:
    """The example applied once."""
    return hotdesk("apply", "-f", str(EXAMPLE), url=broker.url, token=token)


EXPECTED = [
    "organization/school", "organization/year1", "user/teacher", "user/bart", "user/lisa",
    "user/helper", "group/lab-helpers", "provider/lab-sim", "template/lab-desktop", "pool/lab",
]  # fmt: skip


def test_apply_example_twice_is_idempotent(
    broker: Broker, token: str, first_apply: subprocess.CompletedProcess[str]
) -> None:
    assert first_apply.returncode == 0, first_apply.stderr
    assert first_apply.stdout.splitlines() == [f"{name} created" for name in EXPECTED]
    again = hotdesk("apply", "-f", "-", url=broker.url, token=token, stdin=EXAMPLE.read_text())
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{name} unchanged" for name in EXPECTED]


def test_pools_list_and_status(broker: Broker, token: str, first_apply: Any) -> None:
    listed = hotdesk("pools", "list", "--json", url=broker.url, token=token)
    assert listed.returncode == 0, listed.stderr
    pools = {p["name"]: p for p in json.loads(listed.stdout)}
    assert set(pools) == {"demo", "lab"}
    assert (pools["lab"]["provider"], pools["lab"]["max_desktops"]) == ("lab-sim", 6)

    table = hotdesk("pools", "list", url=broker.url, token=token)
    assert table.stdout.splitlines()[0].split()[:3] == ["NAME", "PROVIDER", "TEMPLATE"]

    status = hotdesk("pools", "status", "lab", url=broker.url, token=token)
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "READY", "PROVISIONING"]
    columns = dict(zip(header.split(), row.split(), strict=False))
    assert (columns["NAME"], columns["WARM"], columns["MAX"]) == ("lab", "2", "6")


def test_desktops_are_listed_once_the_pool_warms_up(
    broker: Broker, token: str, first_apply: Any
) -> None:
    deadline = time.monotonic() + 20
    while True:
        listed = hotdesk("desktops", "list", "--pool", "lab", "--json", url=broker.url, token=token)
        assert listed.returncode == 0, listed.stderr
        desktops = json.loads(listed.stdout)
        if sum(d["state"] == "ready" for d in desktops) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [d["state"] for d in desktops] == ["ready", "ready"]
    assert {d["name"] for d in desktops} == {"lab-1", "lab-2"}
    everything = json.loads(
        hotdesk("desktops", "list", "--json", url=broker.url, token=token).stdout
    )
    assert {d["pool"] for d in everything} == {"demo", "lab"}


def test_bad_file_fails_naming_document_and_field_and_changes_nothing(
    broker: Broker, token: str, first_apply: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Group\nmetadata: {name: never-created}\n---\n"
        "kind: Pool\nmetadata: {name: bad}\n"
        "spec: {provider: lab-sim, template: lab-desktop, max_desktops: 2, warm_desktops: 9,"
        " retention: PT1M}\n"
    )
    done = hotdesk("apply", "-f", str(bad), url=broker.url, token=token)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f'error: {bad}: document 2 (Pool "bad"): spec.warm_desktops: '
        "warm must be between 1 and max (2)"
    )
    admin = {"Authorization": f"Bearer {token}"}
    group = httpx.get(f"{broker.url}/api/v1/groups/never-created", headers=admin)
    assert group.status_code == 404

    bad.write_text("kind: Pool\nmetadata: {name: [oops\n")
    done = hotdesk("apply", "-f", str(bad), url=broker.url, token=token)
    assert (done.returncode, done.stderr.startswith(f"error: {bad}: not valid YAML")) == (1, True)


def test_errors_are_one_line(broker: Broker, token: str) -> None:
    anonymous = hotdesk("pools", "list", url=broker.url)
    assert anonymous.returncode == 1
    assert anonymous.stderr.startswith("error: not logged in: HOTDESK_TOKEN is not set")
    wrong = hotdesk("pools", "status", "nope", url=broker.url, token=token)
    assert (wrong.returncode, wrong.stderr) == (1, "error: pool 'nope' not found\n")
    nobody = hotdesk("pools", "list", url=f"http://127.0.0.1:{free_port()}", token=token)
    assert nobody.returncode == 1
    assert "cannot connect to the hotdesk server" in nobody.stderr
    for done in (anonymous, wrong, nobody):
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_sigint_stops_the_server_cleanly(broker: Broker, token: str) -> None:
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(timeout=20) == 0, broker.output()
    time.sleep(0.2)  # let the reader thread collect the last lines
    assert "Traceback" not in broker.output()
    assert "Application shutdown complete" in broker.output()
