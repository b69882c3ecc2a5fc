"""One real `keel serve` for the client's tests (started once: sessions of different tests
do not meet), and clients of it acting for its admin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from keel_serve import KeelServe, free_port

from keel.client import AsyncKeelClient, KeelClient


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServe]:
    serve = KeelServe(tmp_path_factory.mktemp("keel-serve"), free_port())
    serve.start()
    yield serve
    serve.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[KeelServe]:
    """A server of this test's own, for tests that kill it."""
    serve = KeelServe(tmp_path, free_port())
    serve.start()
    yield serve
    serve.stop()


@pytest.fixture
def client(server: KeelServe) -> Iterator[KeelClient]:
    with KeelClient(server.url, server.admin_token) as keel:
        yield keel


@pytest.fixture
async def async_client(server: KeelServe) -> AsyncIterator[AsyncKeelClient]:
    async with AsyncKeelClient(server.url, server.admin_token) as keel:
        yield keel
