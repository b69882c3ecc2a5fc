"""Workers claim queued sessions with leases, run them to the end, hand them back on
shutdown, and never write once another worker holds the lease."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from keel import Keel
from keel.errors import SessionNotResumable
from keel.events import kinds
from keel.orchestrator import run_queue
from keel.types import SessionStatus
from keel.workers import Worker


@contextlib.asynccontextmanager
async def working(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Any, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def queued(keel: Keel) -> list[tuple[str, str | None, int, int]]:
    return await keel.engine.read(run_queue.queued_in)


async def test_a_worker_runs_queued_sessions_to_their_end_and_empties_the_queue(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    sessions = [await keel.create_session(f"Goal {n}", team) for n in range(3)]
    for session in sessions:
        assert await keel.submit(session.id)
    assert not await keel.submit(sessions[0].id)  # already queued

    worker = Worker(keel, capacity=2)
    async with working(worker):

        async def all_done() -> bool:
            found = [await keel.sessions.get(s.id) for s in sessions]
            return all(s.status.is_final for s in found) and not await queued(keel)

        await until(all_done)

    for session in sessions:
        finished = await keel.sessions.get(session.id)
        assert finished.status is SessionStatus.DONE
        types = [e.type for e in await keel.events.read(session.id)]
        assert types[:3] == [kinds.SESSION_CREATED, kinds.SESSION_QUEUED, kinds.SESSION_CLAIMED]
    assert worker.stats.finished == 3


async def test_a_session_that_ended_cannot_be_queued(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session("Goal", team)
    await keel.run(session.id)
    with pytest.raises(SessionNotResumable, match="already ended"):
        await keel.submit(session.id)
    assert await queued(keel) == []


async def test_a_worker_that_stops_hands_its_leases_back_and_another_finishes_the_work(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session(
        "Slow goal", team, config={"scriptedLatencyMs": 150, "maxConcurrency": 1}
    )
    await keel.submit(session.id)
    first = Worker(keel, worker_id="w_first")
    async with working(first):

        async def started() -> bool:
            types = [e.type for e in await keel.events.read(session.id)]
            return kinds.MODEL_CALL in types

        await until(started)
    (row,) = await queued(keel)
    assert row[1] is None  # released: due at once

    second = Worker(keel, worker_id="w_second")
    async with working(second):

        async def done() -> bool:
            return (await keel.sessions.get(session.id)).status.is_final

        await until(done)
    events = await keel.events.read(session.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    claims = [e.payload["workerId"] for e in events if e.type == kinds.SESSION_CLAIMED]
    assert claims == ["w_first", "w_second"]
    assert kinds.SESSION_RESUMED in [e.type for e in events]
    assert (await keel.sessions.get(session.id)).status is SessionStatus.DONE


async def test_a_worker_whose_lease_was_taken_over_cannot_commit_another_step(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session(
        "Slow goal", team, config={"scriptedLatencyMs": 200, "maxConcurrency": 1}
    )
    await keel.submit(session.id)
    # A worker with a long lease and no renewals in the test's window stands for a process
    # that stalled: we steal its lease as a second worker would after it ended.
    stalled = Worker(keel, worker_id="w_stalled", lease_s=60)
    async with working(stalled):

        async def started() -> bool:
            types = [e.type for e in await keel.events.read(session.id)]
            return kinds.MODEL_CALL in types

        await until(started)
        await keel.engine.write(
            lambda tx: tx.execute(
                "UPDATE run_queue SET worker_id = 'w_thief', lease_until = ? WHERE session_id = ?",
                (2**62, session.id),
            )
        )
        seen = await keel.events.last_seq(session.id)

        async def gave_up() -> bool:
            return stalled.stats.lost >= 1 and not stalled.running

        await until(gave_up)
        assert await keel.events.last_seq(session.id) == seen  # nothing written after
    assert (await queued(keel))[0][1] == "w_thief"


async def test_a_session_whose_run_fails_on_a_user_mistake_is_failed_with_the_reason(
    keel: Keel, team: list[dict[str, Any]], tmp_path: Any
) -> None:
    workspace = tmp_path / "gone"
    workspace.mkdir()
    session = await keel.create_session("Goal", team, config={"workspace": str(workspace)})
    await keel.submit(session.id)
    workspace.rmdir()  # removed while the session waited for a worker
    async with working(Worker(keel)):

        async def ended() -> bool:
            return (await keel.sessions.get(session.id)).status.is_final

        await until(ended)
    failed = await keel.sessions.get(session.id)
    assert failed.status is SessionStatus.FAILED
    last = (await keel.events.read(session.id))[-1]
    assert last.type == kinds.SESSION_FAILED
    assert "gone" in last.payload["reason"]
    assert await queued(keel) == []


async def test_a_new_worker_takes_back_at_once_the_leases_of_a_dead_worker_on_this_host(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    import socket
    import sys

    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    session = await keel.create_session("Goal", team)
    await keel.submit(session.id)

    def crashed_worker_holds_it(tx: Any) -> None:
        tx.execute(
            "INSERT INTO workers (id, host, pid, capacity, running, started_at, heartbeat_at) "
            "VALUES ('w_crashed', ?, ?, 1, 1, 0, 0)",
            (socket.gethostname(), gone.pid),
        )
        tx.execute(
            "UPDATE run_queue SET worker_id = 'w_crashed', lease_until = ? WHERE session_id = ?",
            (2**62, session.id),
        )

    await keel.engine.write(crashed_worker_holds_it)
    async with working(Worker(keel)):

        async def done() -> bool:
            return (await keel.sessions.get(session.id)).status.is_final

        await until(done, within=15)
    assert (await keel.sessions.get(session.id)).status is SessionStatus.DONE
