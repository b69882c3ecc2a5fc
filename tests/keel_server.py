"""A real `keel serve` process for tests that need one, and what they do with it over HTTP.

`KeelServer` runs `python -m keel.cli serve` on a free port, with a KEEL_HOME, a workspace
root and a log of its own under one folder, and none of the test process's KEEL_
variables; it is ready once /readyz answers, and reads the admin token the server writes
on the first start of an empty store. A test may kill it (SIGKILL) or stop it and start it
again on the same home and port.

The helpers below talk to it with httpx, as any client would: sessions created and waited
for, event logs read, SSE streams parsed.

Imported as `keel_server` from any test folder: `tests/` is on `sys.path` because
`tests/conftest.py` lives there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

KEEL = [sys.executable, "-m", "keel.cli"]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
DONE_TIMEOUT_S = 60.0
FINAL = {"session.completed", "session.failed", "session.cancelled"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class KeelServer:
    """One `keel serve` process and how to reach it. Under `root`: its KEEL_HOME (`home`),
    its log (`log`) and, unless one is given, its workspace root, where it also runs."""

    def __init__(
        self,
        root: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        workspace_root: Path | None = None,
    ) -> None:
        """`args`: more options for `keel serve`; `env`: variables set for it and for the
        commands run beside it (as KEEL_DATABASE_URL)."""
        self.root = root
        self.args = list(args)
        self.env = dict(env or {})
        self.home = root / "home"
        self.workspace_root = workspace_root or root / "workspaces"
        self.log = root / "serve.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.admin_token = ""
        self.clients: list[httpx.Client] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_env(self) -> dict[str, str]:
        """The environment of the server and of the commands run beside it (`keel token`,
        `keel worker`): this process's without its KEEL_ variables, the home, `env`."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        return {**kept, "KEEL_HOME": str(self.home), "PYTHONUNBUFFERED": "1", **self.env}

    def start(self) -> None:
        """Start the process and wait until it is ready."""
        self.home.mkdir(parents=True, exist_ok=True)  # PostgreSQL stores put no file there
        self.workspace_root.mkdir(parents=True, exist_ok=True)
        command = [
            *KEEL,
            *("--home", str(self.home), "serve", "--port", str(self.port)),
            *("--workspace-root", str(self.workspace_root), "--log-level", "warning"),
            *self.args,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.process_env(),
                cwd=self.workspace_root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"keel serve exited with {self.process.returncode}:\n{self.said()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            self.kill()
            pytest.fail(f"keel serve was not ready within {START_TIMEOUT_S:g} s:\n{self.said()}")
        token_file = self.home / "admin.token"  # written on the first start of an empty store
        if not self.admin_token and token_file.exists():
            self.admin_token = token_file.read_text().strip()

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM, as an operator stops it; SIGKILL if it does not exit in time."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def token(self, user: str, *, admin: bool = False) -> str:
        """A new token for `user`, made as an operator would: `keel token create`."""
        done = subprocess.run(
            [*KEEL, "--home", str(self.home), "token", "create", user]
            + (["--admin"] if admin else []),
            env=self.process_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client acting for `token` (the admin's by default; "" for none), closed
        when the server stops."""
        token = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client


def long_goal(parts: int) -> str:
    """A goal the built-in planner splits into `parts` sub-tasks done one after another
    (each costs the coder two scripted model calls)."""
    return ", ".join(f"look at part {n}" for n in range(1, parts + 1))


def create_session(client: httpx.Client, goal: str, **config: Any) -> str:
    response = client.post("/v1/sessions", json={"goal": goal, "config": config})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


def wait_for_status(
    client: httpx.Client, session_id: str, wanted: Callable[[str], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/sessions/{session_id}")
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        if wanted(session["status"]):
            return session
        if time.monotonic() > deadline:
            pytest.fail(f"session {session_id} is still {session['status']} after {timeout} s")
        time.sleep(0.05)


def wait_until_final(client: httpx.Client, session_id: str) -> dict[str, Any]:
    final = {"done", "failed", "cancelled"}
    return wait_for_status(client, session_id, final.__contains__, DONE_TIMEOUT_S)


def event_log(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    """The session's whole event log, read as JSON pages."""
    events: list[dict[str, Any]] = []
    while True:
        page = client.get(
            f"/v1/sessions/{session_id}/events", params={"after": len(events), "limit": 500}
        )
        assert page.status_code == 200, page.text
        batch = page.json()["events"]
        if not batch:
            return events
        events.extend(batch)


@dataclass
class SseEvent:
    id: int
    type: str
    data: dict[str, Any]


def read_sse(
    response: httpx.Response, *, stop_after: int | None = None
) -> Iterator[SseEvent | None]:
    """The events of an SSE response, in order; None for each comment (a heartbeat).
    Stops after `stop_after` events, or when the server ends the stream."""
    fields: dict[str, str] = {}
    data: list[str] = []
    seen = 0
    for line in response.iter_lines():
        if line.startswith(":"):
            yield None
            continue
        if line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
            continue
        if data:
            yield SseEvent(int(fields["id"]), fields.get("event", ""), json.loads("\n".join(data)))
            seen += 1
            if stop_after is not None and seen >= stop_after:
                return
        fields, data = {}, []
