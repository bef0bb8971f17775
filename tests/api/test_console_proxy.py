"""Console tickets and the websocket proxy: single use, expiry, ownership, sessions (C8, L1).

The VNC server is a fake at the platform boundary: a TCP server that greets with the RFB
banner and echoes what the browser sends, standing in for QEMU's VNC endpoint that the
reconciler records in ``DesktopRow.console``.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from hotdesk.db.models import DesktopRow
from hotdesk.domain.pools import PermissionRule
from hotdesk.services.context import Actor
from tests.api.helpers import Api, expect

BANNER = b"RFB 003.008\n"


class _VncHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(BANNER)
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def vnc_port() -> Iterator[int]:
    """A fake VNC server on 127.0.0.1: banner, then echo."""
    server = _Server(("127.0.0.1", 0), _VncHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


async def _connected_desktop(api: Api, user: Actor, port: int, **pool: Any) -> str:
    """``user`` connects to pool lab; its desktop's console points at the fake VNC server."""
    world = api.world
    world.pool("lab", warm=1, max=3, retention=1800, users=[user], **pool)
    await world.reconciler.converge()
    card = expect(api.post("/me/pools/lab/connect", user), 200)
    desktop_id: str = card["desktop"]["id"]
    _set_console(api, desktop_id, {"protocol": "vnc", "host": "127.0.0.1", "port": port})
    return desktop_id


def _set_console(api: Api, desktop_id: str, console: dict[str, Any]) -> None:
    with api.world.ctx.db.write() as session:
        row = session.get(DesktopRow, desktop_id)
        assert row is not None
        row.console = console


def _state(api: Api, desktop_id: str) -> str:
    with api.world.ctx.db.read() as session:
        row = session.get(DesktopRow, desktop_id)
        assert row is not None
        return row.state


def _wait_state(api: Api, desktop_id: str, state: str) -> None:
    """The server closes its side a moment after the client: wait for the state."""
    deadline = time.monotonic() + 5
    while _state(api, desktop_id) != state and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(api, desktop_id) == state


def _hang_up(ws: Any) -> None:
    """Close from the browser's side and wait for the proxy's close (the test client cancels
    the app as soon as the ``with`` block ends, unlike a real server)."""
    ws.close(1000)
    assert ws.receive()["type"] == "websocket.close"


def _ticket(api: Api, actor: Actor, desktop_id: str, *, admin: bool = False) -> str:
    path = f"/desktops/{desktop_id}/console-ticket"
    body = expect(api.post(path if admin else "/me" + path, actor), 201)
    assert body["expires_in"] <= 60 and body["protocol"] == "vnc"
    assert body["url"] == f"/console/{desktop_id}#ticket={body['ticket']}"
    return str(body["ticket"])


def _refused(api: Api, ticket: str) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        api.client.websocket_connect(f"/api/v1/console/ws?ticket={ticket}") as ws,
    ):
        ws.receive_bytes()
    assert refused.value.code == 4403


async def test_ticket_opens_the_console_once_and_bridges_bytes(api: Api, vnc_port: int) -> None:
    alice = api.world.user("alice")
    desktop_id = await _connected_desktop(api, alice, vnc_port)
    ticket = _ticket(api, alice, desktop_id)
    with api.client.websocket_connect(f"/api/v1/console/ws?ticket={ticket}") as ws:
        assert ws.receive_bytes() == BANNER
        ws.send_bytes(b"RFB 003.008\n")
        assert ws.receive_bytes() == b"RFB 003.008\n"
        assert _state(api, desktop_id) == "connected"
        _hang_up(ws)
        _wait_state(api, desktop_id, "disconnected")  # closing the console ended the session
    _refused(api, ticket)  # single use


async def test_expired_and_unknown_tickets_are_refused(api: Api, vnc_port: int) -> None:
    alice = api.world.user("alice")
    desktop_id = await _connected_desktop(api, alice, vnc_port)
    ticket = _ticket(api, alice, desktop_id)
    assert api.world.clock is not None
    api.world.clock.advance(31)
    _refused(api, ticket)
    _refused(api, "hdc_not-a-ticket")
    _refused(api, "")


async def test_another_users_desktop_is_refused(api: Api, vnc_port: int) -> None:
    alice, bob = api.world.user("alice"), api.world.user("bob")
    desktop_id = await _connected_desktop(api, alice, vnc_port)
    expect(api.post(f"/me/desktops/{desktop_id}/console-ticket", bob), 404)
    expect(api.post(f"/desktops/{desktop_id}/console-ticket", bob), 403)  # admin route
    ticket = _ticket(api, alice, desktop_id)
    expect(api.post("/me/pools/lab/release", alice), 200)  # no longer hers
    _refused(api, ticket)


async def test_opening_the_console_starts_a_session(api: Api, vnc_port: int) -> None:
    alice = api.world.user("alice")
    desktop_id = await _connected_desktop(api, alice, vnc_port)
    expect(api.post("/me/pools/lab/disconnect", alice), 200)
    assert _state(api, desktop_id) == "disconnected"
    ticket = _ticket(api, alice, desktop_id)
    with api.client.websocket_connect(f"/api/v1/console/ws?ticket={ticket}") as ws:
        assert ws.receive_bytes() == BANNER
        assert _state(api, desktop_id) == "connected"
        card = expect(api.get("/me/pools/lab", alice), 200)
        assert card["state"] == "connected"
        _hang_up(ws)
        _wait_state(api, desktop_id, "disconnected")
    card = expect(api.get("/me/pools/lab", alice), 200)
    assert card["state"] == "disconnected" and card["seconds_left"] == 1800


async def test_admin_console_leaves_the_users_session_alone(api: Api, vnc_port: int) -> None:
    alice = api.world.user("alice")
    desktop_id = await _connected_desktop(api, alice, vnc_port)
    expect(api.post("/me/pools/lab/disconnect", alice), 200)
    ticket = _ticket(api, api.admin, desktop_id, admin=True)
    with api.client.websocket_connect(f"/api/v1/console/ws?ticket={ticket}") as ws:
        assert ws.receive_bytes() == BANNER
        assert _state(api, desktop_id) == "disconnected"
        _hang_up(ws)
    assert _state(api, desktop_id) == "disconnected"


async def test_pool_permissions_gate_the_console(api: Api, vnc_port: int) -> None:
    alice = api.world.user("alice")
    rules = (PermissionRule(role="user", may=("restart",)),)
    desktop_id = await _connected_desktop(api, alice, vnc_port, permissions=rules)
    body = expect(api.post(f"/me/desktops/{desktop_id}/console-ticket", alice), 403)
    assert "console" in body["detail"]
    expect(api.post(f"/desktops/{desktop_id}/console-ticket", api.admin), 201)


async def test_console_needs_an_endpoint_and_native_files_say_vnc_only(
    api: Api, vnc_port: int
) -> None:
    alice = api.world.user("alice")
    desktop_id = await _connected_desktop(api, alice, vnc_port)
    body = expect(api.get(f"/me/desktops/{desktop_id}/console-file", alice), 409)
    assert "vnc" in body["detail"] and "browser" in body["detail"]
    _set_console(api, desktop_id, {"protocol": "spice", "host": "10.0.0.5", "port": 5900})
    response = api.get(f"/desktops/{desktop_id}/console-file", api.admin)
    assert response.status_code == 200 and "type=spice" in response.text
    assert response.headers["content-disposition"].endswith('.vv"')
    _set_console(api, desktop_id, {})
    expect(api.post(f"/me/desktops/{desktop_id}/console-ticket", alice), 409)


async def test_unreachable_vnc_endpoint_closes_and_ends_the_session(api: Api) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    alice = api.world.user("alice")
    desktop_id = await _connected_desktop(api, alice, port)
    ticket = _ticket(api, alice, desktop_id)
    with (
        pytest.raises(WebSocketDisconnect),
        api.client.websocket_connect(f"/api/v1/console/ws?ticket={ticket}") as ws,
    ):
        ws.receive_bytes()
    _wait_state(api, desktop_id, "disconnected")


async def test_pages_are_served(api: Api) -> None:
    for path, marker in (("/", "portal.js"), ("/admin", "admin.js"), ("/console/x", "console")):
        response = api.client.get(path)
        assert response.status_code == 200 and marker in response.text
    assert api.client.get("/static/app/js/portal.js").status_code == 200
