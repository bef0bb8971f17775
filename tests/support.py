"""Shared test helpers: databases on SQLite and PostgreSQL, a fake clock, a world builder."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from hotdesk.db.engine import Database
from hotdesk.db.migrate import upgrade
from hotdesk.db.models import Base
from hotdesk.domain.pools import PoolSpec
from hotdesk.providers.sim import SimPlatform
from hotdesk.reconciler.loop import Reconciler
from hotdesk.services import bootstrap, catalog, pools
from hotdesk.services.auth import issue_token
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.directory import UserInput, create_tenant, save_user
from hotdesk.services.pools import EntitlementLine
from hotdesk.settings import ReconcilerSettings

PG_ADMIN_URL = os.environ.get(
    "HOTDESK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


class FakeClock:
    """A settable UTC clock for retention and backoff tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.current += timedelta(seconds=seconds)


def postgres_unavailable_reason() -> str | None:
    """``None`` if a PostgreSQL server answers at ``PG_ADMIN_URL``; else why not."""
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        if os.geteuid() == 0 and shutil.which("pg_ctlcluster") and Path("/etc/postgresql").exists():
            versions = sorted(os.listdir("/etc/postgresql"))
            if versions:
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
                    capture_output=True,
                    check=False,
                    timeout=60,
                )
                try:
                    engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
                    with engine.connect() as conn:
                        conn.execute(text("select 1"))
                    engine.dispose()
                    return None
                except Exception:  # noqa: BLE001
                    pass
        return (
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__}); "
            "run scripts/setup-postgres.sh or set HOTDESK_TEST_PG_URL"
        )


class PostgresDatabases:
    """One migrated throw-away database per test session; tables emptied between tests."""

    def __init__(self, *, prefix: str = "hotdesk_test") -> None:
        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
        upgrade(self.url)

    def fresh_url(self) -> str:
        """The session database, emptied."""
        engine = create_engine(self.url)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return self.url

    def drop(self) -> None:
        """Remove the session database."""
        with self.admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": self.name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
        self.admin.dispose()


class SqliteTemplate:
    """A migrated SQLite file copied for each test (faster than migrating every time)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        upgrade(f"sqlite:///{self.path}")

    def fresh_url(self, directory: Path) -> str:
        """A new migrated database file in ``directory``."""
        target = directory / "hotdesk.db"
        shutil.copy(self.path, target)
        return f"sqlite:///{target}"


_counter = itertools.count()


@dataclass
class World:
    """A broker context with a tenant admin, a sim provider and a template, ready for pools."""

    ctx: BrokerContext
    clock: FakeClock | None
    admin: Actor
    tenant_id: str
    platform: SimPlatform
    provider: str = "sim"
    template: str = "base"
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.ctx)

    def user(self, username: str, *, role: str = "user", organization: str | None = None) -> Actor:
        """Create a user (no password) and return it as an actor."""
        row, _ = save_user(
            self.ctx, self.admin, UserInput(username=username, role=role, organization=organization)
        )
        return Actor(tenant_id=self.tenant_id, user_id=row.id, username=username, role=role)

    def token(self, actor: Actor) -> str:
        """A bearer token for an actor."""
        assert actor.user_id is not None
        return issue_token(self.ctx, actor.user_id, ttl_hours=None)

    def pool(
        self,
        name: str = "lab",
        *,
        warm: int = 2,
        max: int = 4,
        retention: float = 60,
        users: list[Actor] | None = None,
        **extra: Any,
    ) -> str:
        """Create a pool and entitle ``users``; returns the pool name."""
        spec = PoolSpec(
            name=name,
            provider=self.provider,
            template=self.template,
            max_desktops=max,
            warm_desktops=warm,
            retention=timedelta(seconds=retention),
            name_pattern=extra.pop("name_pattern", f"{name}-{{SEQUENCE}}"),
            **extra,
        )
        pools.save_pool(self.ctx, self.admin, spec)
        if users:
            pools.set_entitlements(
                self.ctx, self.admin, name, [EntitlementLine("user", u.username) for u in users]
            )
        return name


def make_world(
    url: str,
    *,
    clock: FakeClock | None = None,
    tenant: str | None = None,
    settings: ReconcilerSettings | None = None,
    sim: dict[str, Any] | None = None,
) -> World:
    """Build a world on the database at ``url`` (already migrated)."""
    db = Database(url)
    ctx = BrokerContext(
        db=db,
        broker_id=bootstrap.ensure_broker_id(db),
        settings=settings or ReconcilerSettings(),
        **({"clock": clock} if clock else {}),
    )
    if tenant is None:
        boot = bootstrap.ensure_default_tenant(ctx)
        tenant_id = boot.tenant_id
    else:
        tenant_id = create_tenant(ctx, tenant).id
        root = Actor(tenant_id=tenant_id, user_id=None, username="setup", role="tenant-admin")
        save_user(ctx, root, UserInput(username="admin", role="tenant-admin"))
    admin = bootstrap.admin_actor(ctx, tenant_id)
    platform_name = f"test-{os.getpid()}-{next(_counter)}"
    SimPlatform.forget(platform_name)
    platform = SimPlatform.named(platform_name, state_file=(sim or {}).get("state_file"))
    catalog.save_provider(
        ctx,
        admin,
        "sim",
        kind="sim",
        config={"platform": platform_name, **(sim or {})},
        max_concurrent_provisioning=1000,
    )
    catalog.save_template(
        ctx, admin, "base", {"image": "base-image", "vcpus": 1, "memory_mib": 512}
    )
    return World(ctx=ctx, clock=clock, admin=admin, tenant_id=tenant_id, platform=platform)
