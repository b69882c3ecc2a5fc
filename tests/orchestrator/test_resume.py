"""A run that dies part-way resumes from its checkpoint: finished nodes are not run again,
the interrupted node runs once more, and the log has no gap and no duplicate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from keel import FunctionFlow, Keel
from keel.errors import SessionNotResumable
from keel.events import kinds
from keel.models import Message, register_script
from keel.orchestrator.loop import SNAPSHOT_EVERY
from keel.types import JsonObject, SessionStatus, TraceEvent


class Crash(BaseException):
    """Stands in for the process dying: nothing after it runs."""


def counting_flow(steps: int, crash_at: int | None, calls: Counter[int]) -> FunctionFlow:
    def make(index: int) -> Any:
        async def step(data: JsonObject) -> JsonObject:
            calls[index] += 1
            if index == crash_at:
                raise Crash
            return {"seen": [*data.get("seen", []), index]}

        step.__name__ = f"step{index}"
        return step

    return FunctionFlow([make(i) for i in range(steps)])


def assert_log_is_whole(events: list[TraceEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    entered = Counter(e.payload["node"] for e in events if e.type == kinds.NODE_ENTER)
    exited = Counter(e.payload["node"] for e in events if e.type == kinds.NODE_EXIT)
    assert set(entered.values()) == {1}, "a node was entered twice"
    assert set(exited.values()) == {1}, "a node was finished twice"
    assert entered == exited


@pytest.mark.parametrize("crash_at", [0, 1, SNAPSHOT_EVERY - 1, SNAPSHOT_EVERY, 77, 119])
async def test_a_function_flow_resumes_at_the_step_that_was_running(
    home: Path, crash_at: int
) -> None:
    calls: Counter[int] = Counter()
    async with await Keel.open(home) as first:
        session = await first.start_flow("count")
        with pytest.raises(Crash):
            await first.run_flow(session.id, counting_flow(120, crash_at, calls))

    async with await Keel.open(home) as second:
        state = await second.run_flow(session.id, counting_flow(120, None, calls))
        events = await second.events.read(session.id)
        finished = await second.sessions.get(session.id)

    assert state.data["seen"] == list(range(120))
    assert calls[crash_at] == 2
    assert all(calls[i] == 1 for i in range(120) if i != crash_at)
    assert finished.status is SessionStatus.DONE
    assert_log_is_whole(events)
    resumed = [e for e in events if e.type == kinds.SESSION_RESUMED]
    assert len(resumed) == 1
    assert resumed[0].payload["step"] == crash_at
    assert resumed[0].run_id == second.run_id != first.run_id


async def test_a_flow_resumed_twice_still_has_a_whole_log(home: Path) -> None:
    calls: Counter[int] = Counter()
    session_id = ""
    for crash_at in (30, 90, None):
        async with await Keel.open(home) as runtime:
            if not session_id:
                session_id = (await runtime.start_flow("count")).id
            flow = counting_flow(150, crash_at, calls)
            if crash_at is None:
                state = await runtime.run_flow(session_id, flow)
            else:
                with pytest.raises(Crash):
                    await runtime.run_flow(session_id, flow)
            events = await runtime.events.read(session_id)
    assert state.data["seen"] == list(range(150))
    assert_log_is_whole(events)


_crash_on: dict[str, int] = {}


def crashing_worker(messages: Any, tools: Any) -> str:
    """The worker script, except that it dies on its n-th call while `_crash_on` says so."""
    _crash_on["calls"] = _crash_on.get("calls", 0) + 1
    if _crash_on.get("at") == _crash_on["calls"]:
        raise Crash
    user = [m for m in messages if isinstance(m, Message) and m.role == "user"][-1]
    return "worked on " + user.content.splitlines()[0]


async def test_a_team_session_resumes_without_paying_for_finished_model_calls(
    home: Path, team: list[dict[str, Any]]
) -> None:
    register_script("crashing-worker", crashing_worker)
    for agent in team:
        if agent["role"] == "worker":
            agent["model"] = "scripted:crashing-worker"
    _crash_on.clear()
    _crash_on["at"] = 2
    async with await Keel.open(home) as first:
        session = await first.create_session("Build it and test it", team)
        with pytest.raises(Crash):
            await first.run(session.id)
    _crash_on.pop("at")
    async with await Keel.open(home) as second:
        finished = await second.resume(session.id)
        events = await second.events.read(session.id)
    assert finished.status is SessionStatus.DONE
    assert_log_is_whole(events)
    calls = [e.payload["agent"] for e in events if e.type == kinds.MODEL_CALL]
    assert calls == ["planner", "builder", "tester", "reviewer"]
    assert _crash_on["calls"] == 3  # builder once, tester twice (died once)


async def test_a_finished_session_cannot_be_resumed(keel: Keel, team: list[Any]) -> None:
    session = await keel.create_session("Do it", team)
    await keel.run(session.id)
    with pytest.raises(SessionNotResumable, match="already ended \\(done\\)"):
        await keel.resume(session.id)


async def test_a_function_flow_session_is_not_resumed_as_a_team(keel: Keel) -> None:
    session = await keel.start_flow("count")
    with pytest.raises(SessionNotResumable, match="run_flow"):
        await keel.resume(session.id)
