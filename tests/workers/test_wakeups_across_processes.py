"""On PostgreSQL a process is woken at once by what another process commits: an idle worker by
a session queued elsewhere, a running session by a cancellation requested elsewhere. Two
runtimes on one store stand for two processes; both would otherwise only notice at their
next poll, set far away here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keel import Keel
from keel.events import kinds
from keel.orchestrator import loop
from keel.types import SessionStatus
from keel.workers import Worker

pytest.importorskip("psycopg", reason="psycopg is not installed")

FAR_S = 30.0
SLOW = {"name": "slow", "role": "worker", "model": "scripted:worker"}


@pytest.fixture
async def two(tmp_path: Path, postgres_url: str) -> AsyncIterator[tuple[Keel, Keel]]:
    here = await Keel.open(tmp_path / "here", database_url=postgres_url)
    there = await Keel.open(tmp_path / "there", database_url=postgres_url)
    try:
        yield here, there
    finally:
        await here.close()
        await there.close()


async def _until(check: object, within: float) -> float:
    began = time.monotonic()
    while not await check():  # type: ignore[operator]
        assert time.monotonic() - began < within, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def test_a_session_queued_in_another_process_wakes_an_idle_worker_at_once(
    two: tuple[Keel, Keel],
) -> None:
    here, there = two
    worker = Worker(here, poll_s=FAR_S)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # it has looked, found nothing, and waits
        session = await there.create_session("Say hello", [SLOW])
        await there.submit(session.id)

        async def claimed() -> bool:
            types = [e.type for e in await there.events.read(session.id)]
            return kinds.SESSION_CLAIMED in types

        assert await _until(claimed, within=5) < 2.0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_cancellation_requested_in_another_process_stops_the_run_at_once(
    two: tuple[Keel, Keel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "CANCEL_POLL_S", FAR_S)
    here, there = two
    session = await here.create_session("Say hello", [SLOW], config={"scriptedLatencyMs": 5000})
    run = asyncio.create_task(here.run(session.id))

    async def thinking() -> bool:
        types = [e.type for e in await there.events.read(session.id)]
        return kinds.NODE_ENTER in types

    await _until(thinking, within=10)
    asked = time.monotonic()
    await there.cancel(session.id, reason="changed my mind")
    ended = await asyncio.wait_for(run, 10)
    assert time.monotonic() - asked < 2.0  # the model call alone takes 5 s
    assert ended.status is SessionStatus.CANCELLED
