"""Running ``hotdesk serve`` as a subprocess: shared by the end-to-end tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

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

    def wait_ready(self, *, password: bool = True) -> None:
        """Wait for the announced URL (and first-start password), then for the health probe."""
        want_password = password
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"hotdesk serve exited early:\n{self.output()}")
            text = self.output()
            url, password = (
                re.search(r"listening on (\S+)", text),
                re.search(r"password '(.+?)'", text),
            )
            if url and (password or not want_password):
                self.url = url.group(1)
                self.password = password.group(1) if password else ""
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        pytest.fail(f"hotdesk serve did not become ready in {START_TIMEOUT} s:\n{self.output()}")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` and reap the process (a zombie would still look alive)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=30)


def start_broker(env: dict[str, str], *, password: bool = False) -> Broker:
    """Start ``hotdesk serve`` with ``env`` and wait until it answers its health probe."""
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
        server.wait_ready(password=password)
    except BaseException:
        server.kill()
        raise
    return server
