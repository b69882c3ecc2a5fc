"""Delegation and handoff: a child task the delegating agent waits for, with what its
parent has left as budget; and passing a task to another agent with an explicit note."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel import Keel
from keel.events import kinds
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import SessionStatus, TaskStatus

ORCHESTRATE = [{"level": "L4", "scope": "agent:*"}]


def lead_script(name: str, role: str) -> str:
    def script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        answers = [m for m in messages if m.role == "tool"]
        if not answers:
            call = ToolCall(
                id="d1", name="delegate", arguments={"goal": "Sum 2 and 3", "role": role}
            )
            return Message(role="assistant", content="Asking for help.", tool_calls=[call])
        return f"The helper answered: {answers[-1].content}"

    register_script(name, script)
    return f"scripted:{name}"


async def test_a_delegated_task_runs_and_its_answer_returns_to_the_delegator(
    keel: Keel,
) -> None:
    agents: list[dict[str, Any]] = [
        {
            "name": "lead",
            "role": "lead",
            "model": lead_script("lead-1", "helper"),
            "tools": ["delegate"],
            "permissions": ORCHESTRATE,
        },
        {"name": "helper", "role": "helper", "model": "scripted:worker"},
    ]
    session = await keel.create_session("Lead the work", agents, budget={"tokensLimit": 10_000})
    finished = await keel.run(session.id)
    events = await keel.events.read(session.id)
    tasks = {t.goal: t for t in await keel.tasks.list(session.id)}

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == (
        "The helper answered: Done: sum 2 and 3, and checked against the session goal."
    )
    child = tasks["Sum 2 and 3"]
    assert child.assigned_agent == "helper"
    assert child.status is TaskStatus.DONE
    lead_task = next(t for t in tasks.values() if t.assigned_agent == "lead")
    assert child.parent_id == lead_task.id
    (delegated,) = [e.payload for e in events if e.type == kinds.TASK_DELEGATED]
    assert delegated["taskId"] == child.id
    assert 0 < delegated["budget"]["tokensLimit"] < 10_000


async def test_a_failed_delegated_task_is_reported_to_its_parent_not_fatal(keel: Keel) -> None:
    register_script("mute", [])
    agents: list[dict[str, Any]] = [
        {
            "name": "lead",
            "role": "lead",
            "model": lead_script("lead-2", "helper"),
            "tools": ["delegate"],
            "permissions": ORCHESTRATE,
        },
        {"name": "helper", "role": "helper", "model": "scripted:mute"},
    ]
    session = await keel.create_session("Lead the work", agents)
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.DONE
    assert finished.final_answer is not None
    assert "error: the sub-task failed" in finished.final_answer


async def test_delegating_to_a_role_nobody_has_is_a_tool_error(keel: Keel) -> None:
    agents = [
        {
            "name": "lead",
            "role": "lead",
            "model": lead_script("lead-3", "astronaut"),
            "tools": ["delegate"],
            "permissions": ORCHESTRATE,
        },
    ]
    session = await keel.create_session("Lead the work", agents)
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.DONE
    assert "no agent has the role 'astronaut'" in (finished.final_answer or "")


async def test_a_handoff_passes_the_task_with_only_the_goal_and_the_note(keel: Keel) -> None:
    seen_by_second: list[list[Message]] = []

    def first(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message:
        call = ToolCall(
            id="h1", name="handoff", arguments={"agent": "second", "note": "use the blue one"}
        )
        return Message(role="assistant", content="secret musings", tool_calls=[call])

    def second(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
        seen_by_second.append(list(messages))
        return "finished with the blue one"

    register_script("first-agent", first)
    register_script("second-agent", second)
    agents = [
        {
            "name": "first",
            "role": "worker",
            "model": "scripted:first-agent",
            "tools": ["handoff"],
            "permissions": ORCHESTRATE,
        },
        {"name": "second", "role": "other", "model": "scripted:second-agent"},
    ]
    session = await keel.create_session("Paint it", agents)
    finished = await keel.run(session.id)
    events = await keel.events.read(session.id)

    assert finished.final_answer == "finished with the blue one"
    (handoff,) = [e.payload for e in events if e.type == kinds.HANDOFF]
    assert handoff == {"from": "first", "to": "second", "note": "use the blue one"}
    (messages,) = seen_by_second
    text = "\n".join(m.content for m in messages)
    assert "use the blue one" in text
    assert "secret musings" not in text
    (task,) = [t for t in await keel.tasks.list(session.id) if t.parent_id is not None]
    assert task.assigned_agent == "second"
