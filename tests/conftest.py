"""Fixtures: a migrated database on SQLite and on PostgreSQL, a fake clock, a world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    FakeClock,
    PostgresDatabases,
    SqliteTemplate,
    World,
    make_world,
    postgres_unavailable_reason,
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    """A migrated SQLite database to copy."""
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases | None]:
    """A migrated PostgreSQL database for the session, or ``None`` if there is no server."""
    if postgres_unavailable_reason() is not None:
        yield None
        return
    dbs = PostgresDatabases()
    yield dbs
    dbs.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, sqlite_template: SqliteTemplate, tmp_path: Path
) -> str:
    """A fresh, migrated database URL; every test using it runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_template.fresh_url(tmp_path)
    dbs = request.getfixturevalue("postgres_databases")
    if dbs is None:
        pytest.skip(postgres_unavailable_reason() or "PostgreSQL unavailable")
    url: str = dbs.fresh_url()
    return url


@pytest.fixture
def sqlite_url(sqlite_template: SqliteTemplate, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database URL only."""
    return sqlite_template.fresh_url(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    """A fake UTC clock."""
    return FakeClock()


@pytest.fixture
def world(database_url: str, clock: FakeClock) -> Iterator[World]:
    """A tenant admin, a sim provider and a template on SQLite and PostgreSQL, fake time."""
    w = make_world(database_url, clock=clock)
    yield w
    w.ctx.db.dispose()


@pytest.fixture
def sqlite_world(sqlite_url: str, clock: FakeClock) -> Iterator[World]:
    """The same world on SQLite only (for tests that do not need both databases)."""
    w = make_world(sqlite_url, clock=clock)
    yield w
    w.ctx.db.dispose()
