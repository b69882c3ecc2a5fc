"""Signals: a transaction asks to signal a channel once it commits, and every process that
shares the store and subscribed to the channel hears it (PostgreSQL's LISTEN/NOTIFY).
SQLite has none: its subscribers are never called back and keep polling."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from keel.store import Engine, Tx, open_engine

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

QUIET_S = 0.3


class Heard:
    """A subscriber that keeps what it hears."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def __call__(self, payload: str | None) -> None:
        self.queue.put_nowait(payload)

    async def next(self, within: float = 5.0) -> str | None:
        return await asyncio.wait_for(self.queue.get(), within)

    async def nothing_more(self) -> None:
        await asyncio.sleep(QUIET_S)
        assert self.queue.empty(), self.queue.get_nowait()


async def listening(engine: Engine, channel: str = "ch") -> Heard:
    """Subscribe, and wait until the engine listens (it says so with a None)."""
    heard = Heard()
    engine.subscribe(channel, heard)
    assert await heard.next() is None
    return heard


def signals(*payloads: str, channel: str = "ch") -> Callable[[Tx], None]:
    def work(tx: Tx) -> None:
        for payload in payloads:
            tx.notify(channel, payload)

    return work


@pytest.fixture
async def engines(postgres_url: str) -> AsyncIterator[tuple[Engine, Engine]]:
    """Two engines on one store, as two processes would have."""
    first, second = await open_engine(postgres_url), await open_engine(postgres_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_commit_signals_every_engine_on_the_store_once_per_payload(
    engines: tuple[Engine, Engine],
) -> None:
    writer, reader = engines
    heard = await listening(reader)
    await writer.write(signals("s1", "s1", "s2"))
    assert {await heard.next(), await heard.next()} == {"s1", "s2"}
    await heard.nothing_more()


async def test_a_transaction_that_rolls_back_signals_nothing(
    engines: tuple[Engine, Engine],
) -> None:
    writer, reader = engines
    heard = await listening(reader)

    def fails(tx: Tx) -> None:
        tx.notify("ch", "s1")
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await writer.write(fails)
    await heard.nothing_more()


async def test_a_subscriber_hears_only_its_channel_and_nothing_once_unsubscribed(
    engines: tuple[Engine, Engine],
) -> None:
    writer, reader = engines
    heard = Heard()
    unsubscribe = reader.subscribe("ch", heard)
    other = await listening(reader, "other")
    assert await heard.next() is None
    await writer.write(signals("s1", channel="other"))
    assert await other.next() == "s1"
    await heard.nothing_more()
    unsubscribe()
    await writer.write(signals("s2"))
    await writer.write(signals("s3", channel="other"))
    assert await other.next() == "s3"
    await heard.nothing_more()


async def test_stores_in_other_schemas_of_the_database_do_not_hear_each_other(
    new_postgres_url: Callable[..., str],
) -> None:
    mine, theirs = await open_engine(new_postgres_url()), await open_engine(new_postgres_url())
    try:
        heard = await listening(theirs)
        await mine.write(signals("s1"))
        await heard.nothing_more()
    finally:
        await mine.close()
        await theirs.close()


async def test_signals_still_to_send_go_out_when_the_engine_closes(
    postgres_url: str, engines: tuple[Engine, Engine]
) -> None:
    _, reader = engines
    heard = await listening(reader)
    writer = await open_engine(postgres_url)
    await writer.write(signals("s1"))
    await writer.close()
    assert await heard.next() == "s1"


async def test_subscribers_are_told_to_look_when_the_lost_listening_connection_is_back(
    postgres_url: str, postgres_admin: psycopg.Connection[Any], engines: tuple[Engine, Engine]
) -> None:
    writer, _ = engines
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    reader = await open_engine(f"{postgres_url}&application_name={name}")
    try:
        heard = await listening(reader)
        killed = postgres_admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (f"{name}:signals",),
        ).fetchall()
        assert killed == [(True,)]
        assert await heard.next() is None  # reconnected: whatever was missed, look
        await writer.write(signals("s1"))
        assert await heard.next() == "s1"
    finally:
        await reader.close()


async def test_sqlite_takes_signals_but_never_calls_a_subscriber_back(tmp_path: Path) -> None:
    engine = await open_engine(f"sqlite:///{tmp_path / 'keel.db'}")
    try:
        heard = Heard()
        unsubscribe = engine.subscribe("ch", heard)
        await engine.write(signals("s1"))
        await heard.nothing_more()
        unsubscribe()
    finally:
        await engine.close()
