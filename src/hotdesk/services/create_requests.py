"""What the platform is asked for when a desktop is created: the request built from a pool,
a desktop intent and its template revision."""

from __future__ import annotations

from hotdesk.db.models import DesktopRow, PoolRow, TemplateRevisionRow
from hotdesk.domain.names import desktop_tags
from hotdesk.providers.base import AgentBootstrap, CreateRequest, TemplateSpec
from hotdesk.services.agent import agent_token
from hotdesk.services.context import BrokerContext


def template_spec(spec: dict[str, object], *, pool_network: str | None) -> TemplateSpec:
    """A template revision's stored spec as the platform-neutral ``TemplateSpec``."""
    networks = [str(n) for n in spec.get("networks") or []]  # type: ignore[attr-defined]
    if pool_network and pool_network not in networks:
        networks.append(pool_network)
    return TemplateSpec(
        image=str(spec.get("image", "")),
        vcpus=int(spec.get("vcpus", 1)),  # type: ignore[call-overload]
        memory_mib=int(spec.get("memory_mib", 1024)),  # type: ignore[call-overload]
        disk_gib=spec.get("disk_gib"),  # type: ignore[arg-type]
        networks=tuple(networks),
        security_groups=tuple(spec.get("security_groups") or ()),  # type: ignore[arg-type]
        has_agent=bool(spec.get("has_agent", False)),
        extra=dict(spec.get("extra") or {}),  # type: ignore[call-overload]
    )


def create_request(
    ctx: BrokerContext, pool: PoolRow, d: DesktopRow, rev: TemplateRevisionRow | None
) -> CreateRequest:
    """The platform request that creates desktop ``d`` of ``pool`` from its revision."""
    spec = rev.spec if rev else {}
    agent = None
    if spec.get("has_agent") and ctx.settings.agent_url:
        assert ctx.agent_secret is not None
        token = agent_token(ctx.agent_secret, d.id)
        agent = AgentBootstrap(url=ctx.settings.agent_url, desktop_id=d.id, token=token)
    return CreateRequest(
        agent=agent,
        name=d.name,
        display_name=d.display_name,
        tags=desktop_tags(broker_id=ctx.broker_id, pool_id=pool.id, desktop_id=d.id),
        template=template_spec(spec, pool_network=pool.spec.get("network")),
        target=pool.spec.get("target"),
        project=pool.spec.get("project"),
        datastore=d.datastore,
    )
