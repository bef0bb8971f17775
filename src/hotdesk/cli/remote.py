"""Commands that talk to a running broker over HTTP: apply, login, pools, desktops."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
import yaml

from hotdesk.cli.client import Client, CliError
from hotdesk.cli.output import print_json, print_table

pools_app = typer.Typer(help="Pools: definitions and live status.", no_args_is_help=True)
desktops_app = typer.Typer(help="Desktops of the tenant's pools.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]


def apply(
    file: Annotated[
        str,
        typer.Option("--file", "-f", help="YAML file of documents separated by ---; - for stdin."),
    ],
) -> None:
    """Create or update everything the documents describe (idempotent; prints kind/name action)."""
    source = "stdin" if file == "-" else file
    documents = load_documents(file)
    try:
        answer = Client.from_env().post("/apply", {"documents": documents})
    except CliError as exc:
        raise CliError(f"{source}: {exc.message}") from exc
    for result in answer["results"]:
        typer.echo(f"{result['kind'].lower()}/{result['name']} {result['action']}")


def load_documents(file: str) -> list[Any]:
    """The non-empty YAML documents of a file (or stdin for ``-``)."""
    source = "stdin" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CliError(f"{source}: not valid YAML{line}: {problem}") from exc
    if not documents:
        raise CliError(f"{source}: no documents found")
    return documents


def login(
    user: Annotated[str, typer.Option("--user", "-u", help="User name.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")] = "default",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Log in and print a bearer token to use as HOTDESK_TOKEN."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    body = {"tenant": tenant, "username": user, "password": password}
    answer = Client.from_env().post("/auth/login", body, auth=False)
    token = answer["token"]
    role = (answer.get("user") or {}).get("role", "?")
    typer.echo(
        f"logged in as {user} (tenant {tenant}, {role}); token valid until "
        f"{answer.get('expires_at', '?')}. Use it with:\n  export HOTDESK_TOKEN={token}",
        err=True,
    )
    typer.echo(token)


@pools_app.command("list")
def pools_list(as_json: JsonFlag = False) -> None:
    """List pools with their sizing and desktop counts."""
    pools = Client.from_env().get("/pools", status="true")
    if as_json:
        print_json(pools)
        return
    rows = []
    for p in pools:
        status = p.get("status") or {}
        rows.append(
            [
                p["name"],
                p.get("provider"),
                p.get("template"),
                p.get("warm_desktops"),
                p.get("max_desktops"),
                p.get("retention"),
                status.get("ready"),
                _assigned(status) if status else None,
                status.get("total"),
                "draining" if p.get("draining") else "active",
            ]
        )
    headers = ["NAME", "PROVIDER", "TEMPLATE", "WARM", "MAX", "RETENTION"]
    print_table([*headers, "READY", "ASSIGNED", "TOTAL", "STATE"], rows, empty="no pools")


STATUS_COLUMNS = {
    "NAME": "name",
    "READY": "ready",
    "PROVISIONING": "provisioning",
    "CONNECTED": "assigned_connected",
    "DISCONNECTED": "assigned_disconnected",
    "FAILED": "failed",
    "DELETING": "deleting",
    "TOTAL": "total",
    "WAITING": "waiting",
    "WARM": "warm",
    "MAX": "max",
    "REVISION": "current_revision",
}
DESKTOP_COLUMNS = {
    "NAME": "name",
    "POOL": "pool",
    "STATE": "state",
    "POWER": "power_state",
    "USER": "user",
    "REVISION": "template_revision",
    "DATASTORE": "datastore",
    "ERROR": "last_error",
}


@pools_app.command("status")
def pools_status(
    name: Annotated[str | None, typer.Argument(help="One pool; all pools when left out.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Desktop counts by state, queue length and provisioning health."""
    client = Client.from_env()
    if name is not None:
        statuses = [client.get(f"/pools/{quote(name, safe='')}/status")]
    else:
        statuses = [p["status"] for p in client.get("/pools", status="true") if p.get("status")]
    if as_json:
        print_json(statuses[0] if name is not None else statuses)
        return
    rows = [[s.get(key) for key in STATUS_COLUMNS.values()] + [_health(s)] for s in statuses]
    print_table([*STATUS_COLUMNS, "HEALTH"], rows, empty="no pools")


@desktops_app.command("list")
def desktops_list(
    pool: Annotated[str | None, typer.Option("--pool", "-p", help="Only this pool.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List desktops with their state, user and template revision."""
    desktops = Client.from_env().get("/desktops", pool=pool)
    if as_json:
        print_json(desktops)
        return
    rows = [[d.get(key) for key in DESKTOP_COLUMNS.values()] for d in desktops]
    print_table(list(DESKTOP_COLUMNS), rows, empty="no desktops")


def _assigned(status: dict[str, Any]) -> int:
    return int(status.get("assigned_connected", 0)) + int(status.get("assigned_disconnected", 0))


def _health(status: dict[str, Any]) -> str:
    if status.get("draining"):
        return "draining"
    if status.get("provisioning_failing"):
        return f"provisioning failing: {status.get('provisioning_error') or 'see events'}"
    return "ok"
