"""Real `keel serve` processes for the A2A tests, and the official A2A SDK's client to talk to
them: each server on a free port with its own KEEL_HOME, waited for until /readyz answers,
its admin token read from `admin.token` as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest

from keel.orchestrator import Keel
from keel.server.tokens import create_token

KEEL = [sys.executable, "-m", "keel.cli"]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class KeelServer:
    """One `keel serve` process with one embedded worker."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    admin_token: str = ""

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def a2a_url(self) -> str:
        return f"{self.url}/a2a"

    @property
    def log(self) -> Path:
        return self.root / "serve.log"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        return {**env, "KEEL_HOME": str(self.home), "PYTHONUNBUFFERED": "1", **self.env}

    def start(self) -> KeelServer:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            *KEEL,
            "--home",
            str(self.home),
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.args,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self._env(), stdout=log, stderr=subprocess.STDOUT
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
            pytest.fail(f"keel serve was not ready within {START_TIMEOUT_S:g} s:\n{self.said()}")
        self.admin_token = (self.home / "admin.token").read_text().strip()
        return self

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    async def token(self, user: str) -> str:
        """A new API token for `user`, written to the server's store."""
        async with await Keel.open(self.home) as keel:
            _, token = await create_token(keel.engine, user)
        return token

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the session API, as the admin."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        assert response.is_success, response.text
        return response.json()


@asynccontextmanager
async def a2a_client(
    url: str, token: str | None, *, streaming: bool = True, polling: bool = False
) -> AsyncIterator[Client]:
    """The SDK's client for the agent at `url` (its card resolved from there), sending
    `token` as a bearer token (None: no token). `polling`: a message is answered at once
    with the task just submitted, as a client that polls for the rest wants."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        config = ClientConfig(
            httpx_client=http, streaming=streaming and not polling, polling=polling
        )
        client = await ClientFactory(config).create_from_url(url)
        async with client:
            yield client


def message(text: str, *, task_id: str = "", context_id: str = "") -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def request(text: str, *, keel: dict[str, Any] | None = None, **ids: str) -> SendMessageRequest:
    """A message to send; `keel`: Keel's options for the session it starts."""
    sent = SendMessageRequest(message=message(text, **ids))
    if keel is not None:
        sent.metadata.update({"keel": keel})
    return sent


def long_goal(parts: int) -> str:
    """A goal the built-in planner splits into `parts` sub-tasks done one after another."""
    return ", ".join(f"look at part {n}" for n in range(1, parts + 1))
