"""Console tickets: what the browser needs to open a desktop's console."""

from __future__ import annotations

from pydantic import Field

from hotdesk.api.schemas.common import ReadSchema


class ConsoleTicketRead(ReadSchema):
    """A single-use console ticket, valid for ``expires_in`` seconds."""

    ticket: str = Field(description="redeem once at /api/v1/console/ws?ticket=...")
    expires_in: int = Field(description="seconds the ticket stays valid")
    url: str = Field(description="the console page, with the ticket in the URL fragment")
    websocket: str = Field(description="the websocket path to open with the ticket")
    protocol: str = Field(description="the desktop's console protocol (vnc here)")
