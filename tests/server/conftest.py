"""Fixtures that start real `keel serve` processes: each on a free port with its own
KEEL_HOME in the test's tmp_path, waited for until /readyz answers, stopped at the end (or
killed in the middle, by the test that means to)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_server import Server, free_port


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts `keel serve` processes with the given extra arguments; stops them all at the
    end of the test."""
    servers: list[Server] = []

    def start(*args: str, name: str = "server") -> Server:
        root = tmp_path / name
        (root / "workspaces").mkdir(parents=True)
        server = Server(
            home=root / "home",
            workspace_root=root / "workspaces",
            port=free_port(),
            args=list(args),
            log=root / "serve.log",
        )
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    """A server with one embedded worker and short leases."""
    return start_server("--workers", "1", "--lease", "2")
