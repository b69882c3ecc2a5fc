"""Sessions for the observability tests, on scripted models: a busy one where an agent
delegates, its helper needs an approval and is denied a write, and the task is handed off;
and helpers to run them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel import Keel
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import Session

ORCHESTRATE = [{"level": "L4", "scope": "agent:*"}]
POLICY = "rules:\n  - {action: ask, command: 'echo git push*', reason: pushes need a person}\n"


def _lead(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
    answers = [m for m in messages if m.role == "tool"]
    if not answers:
        call = ToolCall(id="d1", name="delegate", arguments={"goal": "Push it", "role": "helper"})
        return Message(role="assistant", content="Asking for help.", tool_calls=[call])
    call = ToolCall(id="h1", name="handoff", arguments={"agent": "closer", "note": "wrap up"})
    return Message(role="assistant", content="Handing over.", tool_calls=[call])


def _helper(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
    answers = [m for m in messages if m.role == "tool"]
    if not answers:
        call = ToolCall(id="p1", name="run_command", arguments={"command": "echo git push"})
        return Message(role="assistant", tool_calls=[call])
    if len(answers) == 1:
        call = ToolCall(
            id="w1", name="write_file", arguments={"path": "/etc/passwd", "content": ""}
        )
        return Message(role="assistant", tool_calls=[call])
    return "pushed"


register_script("obs-lead", _lead)
register_script("obs-helper", _helper)
register_script("obs-closer", ["closed"])

BUSY_AGENTS: list[dict[str, Any]] = [
    {
        "name": "lead",
        "role": "lead",
        "model": "scripted:obs-lead",
        "tools": ["delegate", "handoff"],
        "permissions": ORCHESTRATE,
    },
    {
        "name": "helper",
        "role": "helper",
        "model": "scripted:obs-helper",
        "tools": ["run_command", "write_file"],
        "permissions": [
            {"level": "L3", "scope": "shell:exec"},
            {"level": "L2", "scope": "file:write"},
        ],
    },
    {"name": "closer", "role": "closer", "model": "scripted:obs-closer"},
]


def _write_policy(workspace: Path) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "keel.policy.yaml").write_text(POLICY)


async def create_busy_session(keel: Keel, workspace: Path) -> Session:
    await asyncio.to_thread(_write_policy, workspace)
    config = {"workspace": str(workspace)}
    return await keel.create_session("Push the change", BUSY_AGENTS, config=config)


async def wait_for_approval(keel: Keel, session_id: str) -> str:
    for _ in range(500):
        pending = await keel.approvals.list(session_id)
        if pending:
            return pending[0].id
        await asyncio.sleep(0.01)
    raise AssertionError(f"session {session_id} asked for no approval")


async def run_busy_session(keel: Keel, workspace: Path) -> Session:
    """Create and run the busy session, allowing its one approval; return it finished."""
    session = await create_busy_session(keel, workspace)
    running = asyncio.create_task(keel.run(session.id))
    await keel.answer(await wait_for_approval(keel, session.id), allow=True)
    return await asyncio.wait_for(running, 20)
