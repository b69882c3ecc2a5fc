"""Observing a running session: every event after the start reaches the sinks in order,
the rest of the log is read when the run ends, and a failing sink never breaks the run."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from observed_sessions import create_busy_session, wait_for_approval

from keel import Keel
from keel.events import kinds
from keel.observability import observe_session
from keel.types import SessionStatus, TraceEvent

SOLO = [{"name": "solo", "role": "worker", "model": "scripted:worker"}]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[TraceEvent] = []
        self.finished: list[str] = []

    def observe(self, event: TraceEvent) -> None:
        self.seen.append(event)

    def finish(self, session_id: str) -> None:
        self.finished.append(session_id)


class Broken:
    def observe(self, event: TraceEvent) -> None:
        raise RuntimeError(f"cannot take {event.type}")

    def finish(self, session_id: str) -> None:
        raise RuntimeError("cannot finish")


async def test_every_event_after_the_start_reaches_the_sinks_in_order(
    runtime: Keel, tmp_path: Path
) -> None:
    session = await runtime.create_session("Write the parser", SOLO)
    start = await runtime.events.last_seq(session.id)
    recorder = Recorder()
    async with observe_session(runtime.events, session.id, sinks=[recorder]):
        finished = await runtime.run(session.id)
    assert finished.status is SessionStatus.DONE
    events = await runtime.events.read(session.id)

    first, *rest = recorder.seen
    assert first.type == kinds.SESSION_CREATED  # the goal and agent versions
    assert [e.seq for e in rest] == [e.seq for e in events if e.seq > start]
    assert rest[-1].type == kinds.SESSION_COMPLETED
    assert recorder.finished == [session.id]


async def test_events_reach_the_sinks_while_the_run_goes_on(runtime: Keel, tmp_path: Path) -> None:
    session = await create_busy_session(runtime, tmp_path / "work")
    recorder = Recorder()
    async with observe_session(runtime.events, session.id, sinks=[recorder]):
        running = asyncio.create_task(runtime.run(session.id))
        approval = await wait_for_approval(runtime, session.id)
        for _ in range(100):  # the session waits for a person: its events are seen meanwhile
            if any(e.type == kinds.APPROVAL_REQUESTED for e in recorder.seen):
                break
            await asyncio.sleep(0.05)
        assert not recorder.finished
        assert any(e.type == kinds.APPROVAL_REQUESTED for e in recorder.seen)
        await runtime.answer(approval, allow=True)
        await asyncio.wait_for(running, 10)
    assert recorder.seen[-1].type == kinds.SESSION_COMPLETED
    assert recorder.finished == [session.id]


async def test_a_failing_sink_is_logged_once_and_the_run_goes_on(
    runtime: Keel, caplog: pytest.LogCaptureFixture
) -> None:
    session = await runtime.create_session("Write the parser", SOLO)
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="keel.observability"):
        async with observe_session(runtime.events, session.id, sinks=[Broken(), recorder]):
            finished = await runtime.run(session.id)
    assert finished.status is SessionStatus.DONE
    assert recorder.seen[-1].type == kinds.SESSION_COMPLETED  # the other sink got everything
    assert recorder.finished == [session.id]

    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"observing session {session.id}: Broken failed on event 1" in error.getMessage()
    assert error.exc_info is not None
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    fed = len(recorder.seen) + 1  # every event, and the finish
    assert warning.getMessage() == f"observing session {session.id}: Broken failed {fed} times"
