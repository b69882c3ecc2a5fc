"""A real `keel serve` process for the client's tests: a free port, a KEEL_HOME of its own,
ready when the client says so, and killed or restarted on the same port when a test wants.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from keel.client import KeelClient

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def long_goal(parts: int) -> str:
    """A goal the built-in planner splits into `parts` sub-tasks done one after another."""
    return ", ".join(f"look at part {n}" for n in range(1, parts + 1))


@dataclass
class KeelServe:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    admin_token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        return {**env, "KEEL_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def start(self) -> None:
        self.workspaces.mkdir(parents=True, exist_ok=True)
        command = [
            *(sys.executable, "-m", "keel.cli", "--home", str(self.home), "serve"),
            *("--port", str(self.port), "--workspace-root", str(self.workspaces)),
            *("--lease", "2", "--log-level", "warning"),
        ]
        with (self.root / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env(), cwd=self.workspaces, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        with KeelClient(self.url, token="", timeout=2) as probe:
            while not probe.ready():
                if self.process.poll() is not None:
                    pytest.fail(f"keel serve exited with {self.process.returncode}:\n{self.said()}")
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"keel serve was not ready in {START_TIMEOUT_S:g} s:\n{self.said()}"
                    )
                time.sleep(0.05)
        self.admin_token = (self.home / "admin.token").read_text().strip()

    def said(self) -> str:
        return (self.root / "serve.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def token(self, user: str) -> str:
        """A new (non-admin) token for `user`, made as an operator would."""
        done = subprocess.run(
            [sys.executable, "-m", "keel.cli", "--home", str(self.home), "token", "create", user],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()
