"""Independent sub-tasks run concurrently within the session's limit; dependencies order
them; a failing task fails fast; cancelling a session or a task stops running model calls
and commands within a second."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from keel import Keel
from keel.events import kinds
from keel.models import Message, ToolCall, register_script
from keel.types import SessionStatus, TaskStatus, TraceEvent


def planner(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    register_script(name, [json.dumps({"tasks": tasks})])
    return {"name": "planner", "role": "planner", "model": f"scripted:{name}"}


def workers(count: int, model: str = "scripted:worker", **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"w{i}", "role": "worker", "model": model, **extra} for i in range(count)]


def max_in_flight(events: list[TraceEvent]) -> int:
    running = peak = 0
    for event in events:
        if event.type == kinds.NODE_ENTER and event.payload["kind"] == "model":
            running += 1
            peak = max(peak, running)
        elif event.type == kinds.NODE_EXIT and event.payload["node"].startswith("model:"):
            running -= 1
    return peak


async def test_independent_tasks_run_concurrently(keel: Keel) -> None:
    team = [
        planner("fan3", [{"goal": f"part {i}", "dependsOn": []} for i in range(3)]),
        *workers(3),
    ]
    session = await keel.create_session(
        "Do three parts", team, config={"scriptedLatencyMs": 300, "maxConcurrency": 3}
    )
    started = time.perf_counter()
    finished = await keel.run(session.id)
    elapsed = time.perf_counter() - started
    events = await keel.events.read(session.id)
    assert finished.status is SessionStatus.DONE
    assert max_in_flight(events) == 3
    assert elapsed < 0.3 * 1 + 0.3 + 0.45  # plan + one parallel round, not three rounds


async def test_the_concurrency_limit_holds(keel: Keel) -> None:
    team = [
        planner("fan5", [{"goal": f"part {i}", "dependsOn": []} for i in range(5)]),
        *workers(5),
    ]
    session = await keel.create_session(
        "Do five parts", team, config={"scriptedLatencyMs": 50, "maxConcurrency": 2}
    )
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.DONE
    assert max_in_flight(await keel.events.read(session.id)) == 2


async def test_a_task_waits_for_the_tasks_it_depends_on(keel: Keel) -> None:
    team = [
        planner(
            "diamond",
            [
                {"goal": "base", "dependsOn": []},
                {"goal": "left", "dependsOn": [0]},
                {"goal": "right", "dependsOn": [0]},
                {"goal": "top", "dependsOn": [1, 2]},
            ],
        ),
        *workers(2),
    ]
    session = await keel.create_session("Diamond", team, config={"scriptedLatencyMs": 20})
    await keel.run(session.id)
    events = await keel.events.read(session.id)
    goals = {e.task_id: e.payload["goal"] for e in events if e.type == kinds.TASK_CREATED}
    order = [
        goals[e.task_id]
        for e in events
        if e.type == kinds.TASK_STATUS and e.payload["to"] in ("running", "done")
    ]
    assert order.index("base") < order.index("left")
    assert order.index("base") < order.index("right")
    done_left = [i for i, g in enumerate(order) if g == "left"][-1]
    done_right = [i for i, g in enumerate(order) if g == "right"][-1]
    assert order.index("top") > max(done_left, done_right)


async def test_a_failing_task_cancels_its_dependents_and_fails_the_session(keel: Keel) -> None:
    register_script("empty", [])
    team = [
        planner(
            "chain",
            [
                {"goal": "ok", "dependsOn": []},
                {"goal": "breaks", "role": "breaker", "dependsOn": []},
                {"goal": "after", "dependsOn": [1]},
            ],
        ),
        *workers(1),
        {"name": "breaker", "role": "breaker", "model": "scripted:empty"},
    ]
    session = await keel.create_session("Chain", team)
    finished = await keel.run(session.id)
    statuses = {t.goal: t.status for t in await keel.tasks.list(session.id)}
    assert finished.status is SessionStatus.FAILED
    assert statuses["breaks"] is TaskStatus.FAILED
    assert statuses["after"] is TaskStatus.CANCELLED


def sleeper_script(seconds: int) -> str:
    name = f"sleeper-{seconds}"

    def script(messages: list[Message], tools: Any) -> Message | str:
        if any(m.role == "tool" for m in messages):
            return "slept"
        call = ToolCall(id="c1", name="run_command", arguments={"command": f"sleep {seconds}"})
        return Message(role="assistant", tool_calls=[call])

    register_script(name, script)
    return f"scripted:{name}"


SHELL = [{"level": "L3", "scope": "shell:exec"}]


async def wait_for(keel: Keel, session_id: str, kind: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(e.type == kind for e in await keel.events.read(session_id)):
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"no {kind} event within 5 s")


async def test_cancelling_a_session_stops_its_commands_within_a_second(
    keel: Keel, tmp_path: Path
) -> None:
    agents = [
        {
            "name": "s",
            "role": "worker",
            "model": sleeper_script(30),
            "tools": ["run_command"],
            "permissions": SHELL,
        }
    ]
    session = await keel.create_session("Sleep", agents, config={"workspace": str(tmp_path)})
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.TOOL_CALL)
    asked = time.perf_counter()
    await keel.cancel(session.id, reason="enough")
    finished = await asyncio.wait_for(running, 5)
    assert time.perf_counter() - asked < 1.0
    assert finished.status is SessionStatus.CANCELLED
    events = await keel.events.read(session.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == kinds.SESSION_CANCELLED
    assert events[-1].payload["reason"] == "enough"
    assert {t.status for t in await keel.tasks.list(session.id)} == {TaskStatus.CANCELLED}
    with pytest.raises(Exception, match="cannot go from 'cancelled'"):
        await keel.cancel(session.id)


async def test_a_cancel_from_another_process_is_picked_up(home: Path, tmp_path: Path) -> None:
    agents = [
        {
            "name": "s",
            "role": "worker",
            "model": sleeper_script(31),
            "tools": ["run_command"],
            "permissions": SHELL,
        }
    ]
    async with await Keel.open(home) as runner, await Keel.open(home) as other:
        session = await runner.create_session("Sleep", agents, config={"workspace": str(tmp_path)})
        running = asyncio.create_task(runner.run(session.id))
        await wait_for(runner, session.id, kinds.TOOL_CALL)
        asked = time.perf_counter()
        await other.cancel(session.id)
        finished = await asyncio.wait_for(running, 5)
        assert time.perf_counter() - asked < 1.0
        assert finished.status is SessionStatus.CANCELLED


async def test_cancelling_one_task_cancels_its_dependents_and_the_rest_finish(
    keel: Keel, tmp_path: Path
) -> None:
    team = [
        planner(
            "two-lanes",
            [
                {"goal": "slow", "role": "sleeper", "dependsOn": []},
                {"goal": "after slow", "dependsOn": [0]},
                {"goal": "fast", "dependsOn": []},
            ],
        ),
        *workers(1),
        {
            "name": "s",
            "role": "sleeper",
            "model": sleeper_script(32),
            "tools": ["run_command"],
            "permissions": SHELL,
        },
    ]
    session = await keel.create_session("Lanes", team, config={"workspace": str(tmp_path)})
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.TOOL_CALL)
    slow = next(t for t in await keel.tasks.list(session.id) if t.goal == "slow")
    await keel.cancel(session.id, slow.id)
    finished = await asyncio.wait_for(running, 5)
    statuses = {t.goal: t.status for t in await keel.tasks.list(session.id)}
    assert finished.status is SessionStatus.DONE
    assert statuses["slow"] is TaskStatus.CANCELLED
    assert statuses["after slow"] is TaskStatus.CANCELLED
    assert statuses["fast"] is TaskStatus.DONE


async def test_a_session_no_process_runs_is_cancelled_when_resumed(keel: Keel) -> None:
    session = await keel.create_session("Idle", workers(1))
    await keel.cancel(session.id)
    finished = await keel.resume(session.id)
    assert finished.status is SessionStatus.CANCELLED
    types = [e.type for e in await keel.events.read(session.id)]
    assert kinds.MODEL_CALL not in types
