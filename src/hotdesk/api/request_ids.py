"""A request id per API call: taken from ``X-Request-ID`` or made, logged and echoed back."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from hotdesk.observability.logs import REQUEST_ID, new_request_id

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def install_request_ids(app: FastAPI) -> None:
    """Give every request an id (``REQUEST_ID`` context) and return it in ``X-Request-ID``."""

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("x-request-id", "")
        rid = given if _SAFE.match(given) else new_request_id()
        token = REQUEST_ID.set(rid)
        try:
            response = await call_next(request)
        finally:
            REQUEST_ID.reset(token)
        response.headers["X-Request-ID"] = rid
        return response
