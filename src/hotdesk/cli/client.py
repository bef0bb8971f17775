"""The HTTP client of the CLI: talks to a running broker like kubectl talks to its API server."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
API_PREFIX = "/api/v1"


class CliError(Exception):
    """A failure reported on one line (``error: ...``) with exit code 1, never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Client:
    """A broker's base URL and the bearer token to present (``None``: anonymous)."""

    url: str
    token: str | None
    timeout: float = 60.0

    @classmethod
    def from_env(cls) -> Client:
        """The client configured by ``HOTDESK_URL`` and ``HOTDESK_TOKEN``."""
        url = os.environ.get("HOTDESK_URL") or DEFAULT_URL
        return cls(url=url.rstrip("/"), token=os.environ.get("HOTDESK_TOKEN") or None)

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path (under ``/api/v1``); ``None`` parameters are left out."""
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query)

    def post(self, path: str, body: Any, *, auth: bool = True) -> Any:
        """POST a JSON body to an API path."""
        return self.request("POST", path, body=body, auth=auth)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        """Send a request; return the decoded JSON answer or raise ``CliError``."""
        headers = {"Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        content = None
        if body is not None:
            content = json.dumps(body, default=str).encode()
            headers["Content-Type"] = "application/json"
        try:
            with httpx.Client(base_url=self.url + API_PREFIX, timeout=self.timeout) as http:
                response = http.request(
                    method, path, content=content, params=params, headers=headers
                )
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot connect to the hotdesk server at {self.url} ({_reason(exc)}); "
                "is `hotdesk serve` running? Set HOTDESK_URL to point elsewhere."
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the hotdesk server at {self.url} did not answer in time") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CliError(f"request to {self.url} failed: {_reason(exc)}") from exc
        if response.is_success:
            return response.json() if response.content else None
        raise CliError(describe_error(response, auth=auth, token_sent="Authorization" in headers))


def describe_error(response: httpx.Response, *, auth: bool = True, token_sent: bool) -> str:
    """One line saying why the server refused a request (``auth``: the path needs a token)."""
    detail, field = _detail(response)
    code = response.status_code
    if code == 401 and auth and not token_sent:
        return (
            "not logged in: HOTDESK_TOKEN is not set; "
            "run `hotdesk login --user NAME` and export the token it prints"
        )
    if code == 401 and auth:
        return f"{detail}: the token in HOTDESK_TOKEN is not accepted; run `hotdesk login` again"
    if code == 403:
        return f"forbidden: {detail}"
    if code >= 500:
        return f"the server failed ({code}): {detail}"
    if field and field not in detail:
        return f"{field}: {detail}"
    return detail


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return (text[0][:200] if text else response.reason_phrase or "no detail"), None
    if isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        field = data.get("field")
        return detail, field if isinstance(field, str) else None
    return json.dumps(data)[:200], None


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
