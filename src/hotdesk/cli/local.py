"""Commands that work on this machine directly: serve, db upgrade, tenant create, version."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hotdesk import __version__
from hotdesk.cli.client import CliError

if TYPE_CHECKING:  # imported when a command needs it: remote commands start faster
    from hotdesk.settings import Settings

db_app = typer.Typer(help="The broker's database (uses HOTDESK_DB__URL / data dir).")
tenant_app = typer.Typer(help="Tenants (directly in the database, on the broker's host).")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default HOTDESK_DATA_DIR or ./data)."),
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url", help="SQLAlchemy URL (default HOTDESK_DB__URL or SQLite in data dir)."
    ),
]


def load_settings(
    *,
    data_dir: Path | None = None,
    db_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Settings:
    """The settings from the environment, with command-line overrides applied."""
    from pydantic import ValidationError

    from hotdesk.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "__".join(str(p) for p in first["loc"]).upper()
        raise CliError(f"invalid setting HOTDESK_{where}: {first['msg']}") from exc
    if data_dir is not None:
        settings.data_dir = data_dir
    if db_url:
        settings.db = settings.db.model_copy(update={"url": db_url})
    api = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if api:
        settings.api = settings.api.model_copy(update=api)
    if not settings.db.url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (HOTDESK_API__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (HOTDESK_API__PORT).")] = None,
    data_dir: DataDir = None,
    db_url: DbUrl = None,
) -> None:
    """Run the broker: API, portal and reconciler in one process, until Ctrl-C."""
    settings = load_settings(data_dir=data_dir, db_url=db_url, host=host, port=port)
    from sqlalchemy.exc import SQLAlchemyError

    from hotdesk.server import serve as run_server

    try:
        run_server(settings, announce=lambda line: typer.echo(line))
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down gracefully
        typer.echo("hotdesk stopped")
    except SQLAlchemyError as exc:
        raise CliError(f"database {settings.safe_database_url()}: {_first_line(exc)}") from exc


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, db_url: DbUrl = None) -> None:
    """Apply the database migrations up to the newest schema."""
    settings = load_settings(data_dir=data_dir, db_url=db_url)
    from sqlalchemy.exc import SQLAlchemyError

    from hotdesk.db.migrate import upgrade

    try:
        upgrade(settings.database_url())
    except SQLAlchemyError as exc:
        raise CliError(f"database {settings.safe_database_url()}: {_first_line(exc)}") from exc
    typer.echo(f"database {settings.safe_database_url()} is at the newest schema")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    admin: Annotated[str, typer.Option("--admin", help="User name of its first admin.")],
    data_dir: DataDir = None,
    db_url: DbUrl = None,
) -> None:
    """Create a tenant and its first admin; the admin's password is printed once."""
    settings = load_settings(data_dir=data_dir, db_url=db_url)
    from sqlalchemy.exc import SQLAlchemyError

    from hotdesk.domain.errors import HotdeskError
    from hotdesk.domain.pools import validate_name

    try:
        validate_name(name)
        validate_name(admin, field_name="admin")
        password = _create_tenant(settings.database_url(), name, admin)
    except HotdeskError as exc:
        raise CliError(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise CliError(f"database {settings.safe_database_url()}: {_first_line(exc)}") from exc
    typer.echo(f"tenant {name!r} created with admin {admin!r}")
    typer.echo(
        f"password: {password}  (shown once; log in with: hotdesk login -t {name} -u {admin})"
    )


def _create_tenant(url: str, name: str, admin: str) -> str:
    """Create the tenant and its admin in the (migrated) database; return the password."""
    from hotdesk.db.engine import Database
    from hotdesk.db.migrate import upgrade
    from hotdesk.services import bootstrap, directory
    from hotdesk.services.context import Actor, BrokerContext

    upgrade(url)
    db = Database(url)
    try:
        ctx = BrokerContext(db=db, broker_id=bootstrap.ensure_broker_id(db))
        tenant = directory.create_tenant(ctx, name)
        actor = Actor(tenant_id=tenant.id, user_id=None, username="cli", role="tenant-admin")
        password = secrets.token_urlsafe(12)
        data = directory.UserInput(username=admin, password=password, role="tenant-admin")
        directory.save_user(ctx, actor, data, create=True)
    finally:
        db.dispose()
    return password


def version() -> None:
    """Print the version of this hotdesk."""
    typer.echo(f"hotdesk {__version__}")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
