"""The ``hotdesk`` command: run the broker, manage its database, drive it over HTTP."""

from __future__ import annotations

import typer

from hotdesk.cli import image, local, remote
from hotdesk.cli.client import CliError

app = typer.Typer(
    name="hotdesk",
    help="hotdesk: a broker for dynamic (floating, non-persistent) desktop pools.\n\n"
    "Commands that talk to a broker use HOTDESK_URL (default http://127.0.0.1:8080) and "
    "HOTDESK_TOKEN (from `hotdesk login`).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.command()(local.serve)
app.command()(remote.apply)
app.command()(remote.login)
app.command()(local.version)
app.add_typer(remote.pools_app, name="pools")
app.add_typer(remote.desktops_app, name="desktops")
app.add_typer(local.db_app, name="db")
app.add_typer(local.tenant_app, name="tenant")
app.add_typer(image.image_app, name="image")


def main() -> None:
    """Entry point of the ``hotdesk`` console script: failures are one line, exit code 1."""
    try:
        app()
    except CliError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
