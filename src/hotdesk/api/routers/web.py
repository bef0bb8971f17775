"""The browser surfaces: the user portal (``/``), the admin console (``/admin``), the console
page (``/console/{id}``), their static files, noVNC from ``node_modules`` and the live stream.

Pages are small server-rendered HTML shells; the behaviour lives in plain ES modules under
``web/static/js`` (no build step). noVNC comes from npm (``package.json`` at the repo root) and
is served from ``node_modules/@novnc/novnc``, never copied into the repository.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from hotdesk import __version__
from hotdesk.api.deps import AdminActor, Ctx
from hotdesk.api.routers.common import desktop_reads
from hotdesk.api.schemas.pools import PoolRead
from hotdesk.domain.errors import NotFound
from hotdesk.services import pools
from hotdesk.services.context import Actor, BrokerContext

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
NOVNC_ENV = "HOTDESK_NOVNC_DIR"
STREAM_INTERVAL = 1.0
HEARTBEAT_EVERY = 15

pages = APIRouter(include_in_schema=False)
stream = APIRouter(tags=["events"])


def install(app: FastAPI, *, prefix: str) -> None:
    """Add the pages, the static files, noVNC and the live stream (under ``prefix``) to app."""
    app.include_router(pages)
    app.include_router(stream, prefix=prefix)
    app.mount("/static/app", StaticFiles(directory=WEB_DIR / "static"), name="web-static")
    novnc = novnc_dir()
    if novnc is not None:
        app.mount("/static/novnc", StaticFiles(directory=novnc), name="novnc")
    else:
        app.add_api_route("/static/novnc/{path:path}", _novnc_missing, include_in_schema=False)


def novnc_dir() -> Path | None:
    """Where ``@novnc/novnc`` is installed: ``$HOTDESK_NOVNC_DIR``, else a ``node_modules``
    beside the source tree or in the working directory; ``None`` if not installed."""
    explicit = os.environ.get(NOVNC_ENV)
    candidates = [Path(explicit)] if explicit else []
    for root in (Path(__file__).resolve().parents[4], Path.cwd()):
        candidates.append(root / "node_modules" / "@novnc" / "novnc")
    return next((c for c in candidates if (c / "core" / "rfb.js").is_file()), None)


async def _novnc_missing(path: str) -> PlainTextResponse:
    return PlainTextResponse(
        f"noVNC is not installed ({path}): run scripts/setup-web.sh (npm ci)", status_code=404
    )


@pages.get("/", response_class=HTMLResponse)
def portal_page() -> HTMLResponse:
    """The user portal: sign in, one card per entitled pool, Connect."""
    return HTMLResponse(render("portal.html"))


@pages.get("/admin", response_class=HTMLResponse)
def admin_page() -> HTMLResponse:
    """The admin console: pools, entitlements, desktops, events, charts."""
    return HTMLResponse(render("admin.html"))


@pages.get("/console/{desktop_id}", response_class=HTMLResponse)
def console_page(desktop_id: str) -> HTMLResponse:
    """The desktop's console in the browser (noVNC); the ticket comes in the URL fragment."""
    return HTMLResponse(
        render("console.html", desktop_id=desktop_id, novnc=str(novnc_dir() is not None).lower())
    )


@pages.get("/favicon.ico")
def favicon() -> Response:
    """No icon (avoids a 404 in every browser log)."""
    return Response(status_code=204)


def render(name: str, **values: str) -> str:
    """A page shell with ``{{key}}`` placeholders filled (HTML-escaped)."""
    text = _template(name)
    for key, value in {"version": __version__, **values}.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


@cache
def _template(name: str) -> str:
    return (WEB_DIR / "templates" / name).read_text(encoding="utf-8")


@stream.get("/stream")
async def live_stream(request: Request, ctx: Ctx, actor: AdminActor) -> StreamingResponse:
    """Server-sent events: a ``snapshot`` of pools (with status) and desktops when it changes.

    Read it with ``fetch`` and the ``Authorization`` header (tokens do not go in URLs).
    """
    return StreamingResponse(
        _events(request, ctx, actor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, ctx: BrokerContext, actor: Actor) -> AsyncIterator[str]:
    last = ""
    quiet = 0
    while not await request.is_disconnected():
        data = await asyncio.to_thread(snapshot, ctx, actor)
        if data != last:
            last, quiet = data, 0
            yield f"event: snapshot\ndata: {data}\n\n"
        else:
            quiet += 1
            if quiet >= HEARTBEAT_EVERY:
                quiet = 0
                yield ": keep-alive\n\n"
        await asyncio.sleep(STREAM_INTERVAL)


def snapshot(ctx: BrokerContext, actor: Actor) -> str:
    """The admin console's live data as JSON: pools with status, live desktops."""
    out: list[dict[str, Any]] = []
    for row in pools.list_pools(ctx, actor):
        try:
            status = pools.pool_status(ctx, actor, row.name)
        except NotFound:
            continue
        out.append(PoolRead.of(row, status).model_dump(mode="json"))
    desktops = desktop_reads(ctx, actor, pools.list_desktops(ctx, actor, None))
    body = {"pools": out, "desktops": [d.model_dump(mode="json") for d in desktops]}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
