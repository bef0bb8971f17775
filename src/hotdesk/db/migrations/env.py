"""Alembic environment: migrations run against the URL hotdesk passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from hotdesk.db.models import Base

config = context.config
_url = config.get_main_option("sqlalchemy.url")
assert _url, "hotdesk passes the database URL to Alembic"
url: str = _url


def run_migrations_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


MIGRATION_LOCK = 7_271_001  # PostgreSQL advisory lock id: one migrating broker at a time


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # brokers starting together: the others wait here, then find nothing to do
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
