"""The ``hotdesk`` command end to end: a real ``hotdesk serve`` and the CLI as subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab.yaml"
START_TIMEOUT = 30.0


def hotdesk_command() -> list[str]:
    """The installed ``hotdesk`` console script (or the same entry point through Python)."""
    script = Path(sys.executable).parent / "hotdesk"
    if script.exists():
        return [str(script)]
    found = shutil.which("hotdesk")
    return [found] if found else [sys.executable, "-c", "from hotdesk.cli import main; main()"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any HOTDESK_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    return env | extra


@dataclass
class Broker:
    """A running ``hotdesk serve`` and what it announced."""

    process: subprocess.Popen[str]
    url: str = ""
    password: str = ""
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        """Everything the server printed so far."""
        return "\n".join(self.lines)

    def read(self) -> None:
        """Collect the server's output (run in a thread so the pipe never fills)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self) -> None:
        """Wait for the announced URL and password, then for the health probe."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"hotdesk serve exited early:\n{self.output()}")
            text = self.output()
            url, password = (
                re.search(r"listening on (\S+)", text),
                re.search(r"password '(.+?)'", text),
            )
            if url and password:
                self.url, self.password = url.group(1), password.group(1)
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        pytest.fail(f"hotdesk serve did not become ready in {START_TIMEOUT} s:\n{self.output()}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """``hotdesk serve`` on a free port with a fresh data directory and the sim demo pool."""
    env = clean_env(
        HOTDESK_DATA_DIR=str(tmp_path_factory.mktemp("hotdesk-data")),
        HOTDESK_API__HOST="127.0.0.1",
        HOTDESK_API__PORT=str(free_port()),
        HOTDESK_DEMO="true",
        HOTDESK_DEMO_PLATFORM="sim",
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [*hotdesk_command(), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Broker(process)
    threading.Thread(target=server.read, daemon=True).start()
    try:
        server.wait_ready()
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def hotdesk(
    *args: str, url: str, token: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI against a broker."""
    env = clean_env(HOTDESK_URL=url, **({"HOTDESK_TOKEN": token} if token else {}))
    return subprocess.run(
        [*hotdesk_command(), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def token(broker: Broker) -> str:
    """An admin token obtained with ``hotdesk login`` (password on stdin)."""
    login = ("login", "--user", "admin", "--password-stdin")
    done = hotdesk(*login, url=broker.url, stdin=broker.password + "\n")
    assert done.returncode == 0, done.stderr
    assert "export HOTDESK_TOKEN=" in done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def first_apply(broker: Broker, token: str) -> subprocess.CompletedProcess[str]:
    """The example applied once."""
    return hotdesk("apply", "-f", str(EXAMPLE), url=broker.url, token=token)


EXPECTED = [
    "organization/school", "organization/year1", "user/teacher", "user/bart", "user/lisa",
    "user/helper", "group/lab-helpers", "provider/lab-sim", "template/lab-desktop", "pool/lab",
]  # fmt: skip


def test_apply_example_twice_is_idempotent(
    broker: Broker, token: str, first_apply: subprocess.CompletedProcess[str]
) -> None:
    assert first_apply.returncode == 0, first_apply.stderr
    assert first_apply.stdout.splitlines() == [f"{name} created" for name in EXPECTED]
    again = hotdesk("apply", "-f", "-", url=broker.url, token=token, stdin=EXAMPLE.read_text())
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{name} unchanged" for name in EXPECTED]


def test_pools_list_and_status(broker: Broker, token: str, first_apply: Any) -> None:
    listed = hotdesk("pools", "list", "--json", url=broker.url, token=token)
    assert listed.returncode == 0, listed.stderr
    pools = {p["name"]: p for p in json.loads(listed.stdout)}
    assert set(pools) == {"demo", "lab"}
    assert (pools["lab"]["provider"], pools["lab"]["max_desktops"]) == ("lab-sim", 6)

    table = hotdesk("pools", "list", url=broker.url, token=token)
    assert table.stdout.splitlines()[0].split()[:3] == ["NAME", "PROVIDER", "TEMPLATE"]

    status = hotdesk("pools", "status", "lab", url=broker.url, token=token)
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "READY", "PROVISIONING"]
    columns = dict(zip(header.split(), row.split(), strict=False))
    assert (columns["NAME"], columns["WARM"], columns["MAX"]) == ("lab", "2", "6")


def test_desktops_are_listed_once_the_pool_warms_up(
    broker: Broker, token: str, first_apply: Any
) -> None:
    deadline = time.monotonic() + 20
    while True:
        listed = hotdesk("desktops", "list", "--pool", "lab", "--json", url=broker.url, token=token)
        assert listed.returncode == 0, listed.stderr
        desktops = json.loads(listed.stdout)
        if sum(d["state"] == "ready" for d in desktops) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [d["state"] for d in desktops] == ["ready", "ready"]
    assert {d["name"] for d in desktops} == {"lab-1", "lab-2"}
    everything = json.loads(
        hotdesk("desktops", "list", "--json", url=broker.url, token=token).stdout
    )
    assert {d["pool"] for d in everything} == {"demo", "lab"}


def test_bad_file_fails_naming_document_and_field_and_changes_nothing(
    broker: Broker, token: str, first_apply: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Group\nmetadata: {name: never-created}\n---\n"
        "kind: Pool\nmetadata: {name: bad}\n"
        "spec: {provider: lab-sim, template: lab-desktop, max_desktops: 2, warm_desktops: 9,"
        " retention: PT1M}\n"
    )
    done = hotdesk("apply", "-f", str(bad), url=broker.url, token=token)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f'error: {bad}: document 2 (Pool "bad"): spec.warm_desktops: '
        "warm must be between 1 and max (2)"
    )
    admin = {"Authorization": f"Bearer {token}"}
    group = httpx.get(f"{broker.url}/api/v1/groups/never-created", headers=admin)
    assert group.status_code == 404

    bad.write_text("kind: Pool\nmetadata: {name: [oops\n")
    done = hotdesk("apply", "-f", str(bad), url=broker.url, token=token)
    assert (done.returncode, done.stderr.startswith(f"error: {bad}: not valid YAML")) == (1, True)


def test_errors_are_one_line(broker: Broker, token: str) -> None:
    anonymous = hotdesk("pools", "list", url=broker.url)
    assert anonymous.returncode == 1
    assert anonymous.stderr.startswith("error: not logged in: HOTDESK_TOKEN is not set")
    wrong = hotdesk("pools", "status", "nope", url=broker.url, token=token)
    assert (wrong.returncode, wrong.stderr) == (1, "error: pool 'nope' not found\n")
    nobody = hotdesk("pools", "list", url=f"http://127.0.0.1:{free_port()}", token=token)
    assert nobody.returncode == 1
    assert "cannot connect to the hotdesk server" in nobody.stderr
    for done in (anonymous, wrong, nobody):
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_sigint_stops_the_server_cleanly(broker: Broker, token: str) -> None:
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(timeout=20) == 0, broker.output()
    time.sleep(0.2)  # let the reader thread collect the last lines
    assert "Traceback" not in broker.output()
    assert "Application shutdown complete" in broker.output()
