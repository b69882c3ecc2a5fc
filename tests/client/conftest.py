"""One real `keel serve` for the client's tests (started once: sessions of different tests
do not meet), and clients of it acting for its admin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from keel.client import AsyncKeelClient, KeelClient
from keel_server import KeelServer


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    server = KeelServer(tmp_path_factory.mktemp("keel-serve"), "--lease", "2")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[KeelServer]:
    """A server of this test's own, for tests that kill it."""
    server = KeelServer(tmp_path, "--lease", "2")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(server: KeelServer) -> Iterator[KeelClient]:
    with KeelClient(server.url, server.admin_token) as keel:
        yield keel


@pytest.fixture
async def async_client(server: KeelServer) -> AsyncIterator[AsyncKeelClient]:
    async with AsyncKeelClient(server.url, server.admin_token) as keel:
        yield keel
