"""``hotdesk image``: guest images the broker can build on this machine (the demo desktop)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hotdesk.cli.client import CliError

image_app = typer.Typer(help="Guest images built on this machine.")


@image_app.command("build-demo")
def build_demo(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Build directory (default <data dir>/images/demo, as `serve` uses)."
        ),
    ] = None,
) -> None:
    """Build the demo guest image (busybox + Debian kernel, with the guest agent); print the
    manifest path.  A finished build in the directory is reused."""
    from hotdesk.cli.local import load_settings
    from hotdesk.images import build_demo_image

    target = out if out is not None else load_settings().data_dir / "images" / "demo"
    try:
        image = build_demo_image(target.resolve(), progress=lambda msg: typer.echo(msg, err=True))
    except Exception as exc:  # apt, dpkg-deb or qemu-img failed: say so in one line
        raise CliError(f"the demo image did not build: {exc}") from exc
    typer.echo(str(image.manifest))
