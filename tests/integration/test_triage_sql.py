"""The grouped SQL summary agrees with the domain's ``summarize`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from hotdesk.db.models import DesktopRow, PoolRow
from hotdesk.domain.triage import PoolSummary, summarize
from hotdesk.services import claims, pools
from hotdesk.services.lookup import desktop_view
from hotdesk.services.triage import pool_summaries, pools_needing_a_pass
from tests.support import World


def normalised(summary: PoolSummary) -> tuple[object, ...]:
    groups = sorted(summary.groups, key=lambda g: (g.state.value, g.unassigned))
    return (tuple(groups), summary.waiting, summary.idle_datastores)


async def test_summary_matches_the_rows_and_steady_pools_are_skipped(world: World) -> None:
    users = [world.user(f"u{i}") for i in range(4)]
    world.pool("lab", warm=2, max=3, users=users, datastores=["ds1"])
    world.pool("quiet", warm=1, max=2, users=users)
    await world.reconciler.converge()
    ids = {n: pools.get_pool_row(world.ctx, world.admin, n).id for n in ("lab", "quiet")}
    assert pools_needing_a_pass(world.ctx, list(ids.values())) == [], "steady: nothing to do"

    for user in users[:2]:
        claims.connect(world.ctx, user, "lab")
    claims.disconnect(world.ctx, users[0], "lab")
    for user in users[2:]:
        claims.connect(world.ctx, user, "lab")  # one made on demand, then max: one waits
    assert pools_needing_a_pass(world.ctx, list(ids.values())) == [ids["lab"]]

    with world.ctx.db.read() as session:
        rows = {p.id: p for p in session.scalars(select(PoolRow))}
        from_sql = pool_summaries(session, list(ids.values()), rows)
        for pool_id in ids.values():
            desktops = session.scalars(
                select(DesktopRow).where(DesktopRow.pool_id == pool_id)
            ).all()
            expected = summarize([desktop_view(d) for d in desktops], waiting=0)
            waiting = from_sql[pool_id].waiting
            assert waiting == (1 if pool_id == ids["lab"] else 0)
            restricted = bool(rows[pool_id].spec.get("datastores"))  # only those are looked at
            datastores = expected.idle_datastores if restricted else frozenset()
            expected = PoolSummary(expected.groups, waiting, datastores)
            assert normalised(from_sql[pool_id]) == normalised(expected)
