"""Console access: single-use tickets, the VNC websocket proxy and native client files.

The proxy bridges a browser websocket (binary frames) to the VNC endpoint the reconciler
stored in the database; the API never calls a platform driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect, WebSocketState

from hotdesk.api.deps import AdminActor, Ctx, CurrentActor
from hotdesk.api.schemas.console import ConsoleTicketRead
from hotdesk.services import consoles
from hotdesk.services.consoles import ConsoleGrant, IssuedTicket, TicketRefused
from hotdesk.services.context import BrokerContext

log = logging.getLogger("hotdesk.console")
router = APIRouter(tags=["console"])

WS_PATH = "/api/v1/console/ws"
CONNECT_TIMEOUT = 5.0
RECHECK_SECONDS = 2.0
CHUNK = 64 * 1024
#: Open user consoles per desktop in this process: the session ends when the last closes.
_open_user_consoles: Counter[str] = Counter()


@router.post("/desktops/{desktop_id}/console-ticket", status_code=201)
def admin_console_ticket(desktop_id: str, ctx: Ctx, actor: AdminActor) -> ConsoleTicketRead:
    """A single-use, short-lived ticket to open any desktop's console (administrators)."""
    return _ticket_read(consoles.issue_ticket(ctx, actor, desktop_id))


@router.post("/me/desktops/{desktop_id}/console-ticket", status_code=201)
def my_console_ticket(desktop_id: str, ctx: Ctx, actor: CurrentActor) -> ConsoleTicketRead:
    """A single-use ticket for the console of the user's own desktop (C8 ``accessConsole``)."""
    return _ticket_read(consoles.issue_ticket(ctx, actor, desktop_id))


@router.get("/desktops/{desktop_id}/console-file")
def admin_console_file(desktop_id: str, ctx: Ctx, actor: AdminActor) -> Response:
    """A SPICE ``.vv`` or RDP ``.rdp`` file where the platform offers one (409 for VNC)."""
    return _file(consoles.native_file(ctx, actor, desktop_id))


@router.get("/me/desktops/{desktop_id}/console-file")
def my_console_file(desktop_id: str, ctx: Ctx, actor: CurrentActor) -> Response:
    """The native client file of the user's own desktop (409 on VNC-only platforms)."""
    return _file(consoles.native_file(ctx, actor, desktop_id))


@router.websocket("/console/ws")
async def console_websocket(
    websocket: WebSocket, ticket: Annotated[str, Query(max_length=200)] = ""
) -> None:
    """Bridge the browser to the desktop's VNC server, with a single-use ticket."""
    ctx: BrokerContext = websocket.app.state.ctx
    try:
        grant = await asyncio.to_thread(consoles.open_console, ctx, ticket)
    except TicketRefused as exc:
        log.info("console refused: %s", exc)
        await websocket.close(code=4403, reason=str(exc)[:120])
        return
    _opened(grant)
    try:
        await _proxy(websocket, ctx, grant)
    finally:
        if _closed(grant):  # shielded: a cancelled connection still ends the session
            await asyncio.shield(asyncio.to_thread(consoles.close_console, ctx, grant))


async def _proxy(websocket: WebSocket, ctx: BrokerContext, grant: ConsoleGrant) -> None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(grant.host, grant.port), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        log.warning("console of %s unreachable: %s", grant.desktop_id, exc)
        await websocket.close(code=1011, reason="the desktop's console does not answer")
        return
    asked = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="binary" if "binary" in asked else None)
    tasks = [
        asyncio.create_task(_browser_to_vnc(websocket, writer)),
        asyncio.create_task(_vnc_to_browser(reader, websocket)),
        asyncio.create_task(_watch(ctx, grant)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await websocket.close(code=1000)


async def _browser_to_vnc(websocket: WebSocket, writer: asyncio.StreamWriter) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None and message.get("text") is not None:
            data = str(message["text"]).encode()
        if data:
            writer.write(data)
            await writer.drain()


async def _vnc_to_browser(reader: asyncio.StreamReader, websocket: WebSocket) -> None:
    while True:
        data = await reader.read(CHUNK)
        if not data:
            return
        await websocket.send_bytes(data)


async def _watch(ctx: BrokerContext, grant: ConsoleGrant) -> None:
    """End the bridge when the session ended elsewhere (Disconnect, release, deletion)."""
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        if not await asyncio.to_thread(consoles.still_allowed, ctx, grant):
            return


def _opened(grant: ConsoleGrant) -> None:
    if grant.user_session:
        _open_user_consoles[grant.desktop_id] += 1


def _closed(grant: ConsoleGrant) -> bool:
    """Count a user console as closed; True when it was the desktop's last one."""
    if not grant.user_session:
        return False
    _open_user_consoles[grant.desktop_id] -= 1
    if _open_user_consoles[grant.desktop_id] > 0:
        return False
    del _open_user_consoles[grant.desktop_id]
    return True


def _ticket_read(issued: IssuedTicket) -> ConsoleTicketRead:
    return ConsoleTicketRead(
        ticket=issued.ticket,
        expires_in=issued.expires_in,
        url=f"/console/{issued.desktop_id}#ticket={issued.ticket}",
        websocket=f"{WS_PATH}?ticket={issued.ticket}",
        protocol=issued.protocol,
    )


def _file(native: tuple[str, str, str]) -> Response:
    filename, media_type, content = native
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
