"""Fixtures that start real `keel serve` processes (`keel_server.KeelServer`): each under
the test's tmp_path, stopped at the end (or killed in the middle, by the test that means
to)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel_server import KeelServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., KeelServer]]:
    """Starts `keel serve` processes with the given extra arguments; stops them all at the
    end of the test."""
    servers: list[KeelServer] = []

    def start(*args: str, name: str = "server") -> KeelServer:
        server = KeelServer(tmp_path / name, *args)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., KeelServer]) -> KeelServer:
    """A server with one embedded worker and short leases."""
    return start_server("--workers", "1", "--lease", "2")
