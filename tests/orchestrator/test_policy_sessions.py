"""The project's policy governs a session: a bad policy file stops Keel before anything
runs; an `ask` rule blocks the call until a person answers; `--remember` lets the same
call through again without asking."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from keel import Keel
from keel.events import kinds
from keel.guardrails import PolicyError
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import SessionStatus

SHELL = [{"level": "L3", "scope": "shell:exec"}]


def pusher(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
    done = sum(1 for m in messages if m.role == "tool")
    if done < 2:
        call = ToolCall(id=f"p{done}", name="run_command", arguments={"command": "echo git push"})
        return Message(role="assistant", tool_calls=[call])
    return "pushed twice"


def agents() -> list[dict[str, object]]:
    register_script("pusher", pusher)
    return [
        {
            "name": "ops",
            "role": "worker",
            "model": "scripted:pusher",
            "tools": ["run_command"],
            "permissions": SHELL,
        }
    ]


async def test_a_bad_policy_file_stops_keel_before_anything_runs(
    keel: Keel, tmp_path: Path
) -> None:
    (tmp_path / "keel.policy.yaml").write_text("rules:\n  - {action: block, tool: x}\n")
    with pytest.raises(PolicyError, match=r"keel.policy.yaml: rules\[0\].action"):
        await keel.create_session("Push", agents(), config={"workspace": str(tmp_path)})
    assert await keel.sessions.list() == []
    assert await keel.agents.latest() == []


async def test_an_ask_rule_waits_for_a_person_and_remember_lets_it_through_again(
    keel: Keel, tmp_path: Path
) -> None:
    (tmp_path / "keel.policy.yaml").write_text(
        "rules:\n  - {action: ask, command: 'echo git push*', reason: pushes need a person}\n"
    )
    session = await keel.create_session("Push", agents(), config={"workspace": str(tmp_path)})
    running = asyncio.create_task(keel.run(session.id))
    for _ in range(250):
        pending = await keel.approvals.list(session.id)
        if pending:
            break
        await asyncio.sleep(0.02)
    (approval,) = pending
    assert approval.kind == "guardrail"
    assert any("pushes need a person" in reason for reason in approval.reasons)
    await keel.answer(approval.id, allow=True, remember=True)
    finished = await asyncio.wait_for(running, 10)
    events = await keel.events.read(session.id)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "pushed twice"
    assert len([e for e in events if e.type == kinds.APPROVAL_REQUESTED]) == 1  # remembered
    results = [e.payload for e in events if e.type == kinds.TOOL_RESULT]
    assert [r["ok"] for r in results] == [True, True]
    assert all("git push" in r["output"] for r in results)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("sandbox: {backend: chroot}", "sandbox.backend: must be one of auto, bubblewrap"),
        ("sandbox: {allowUnsandboxed: 'yes'}", "sandbox.allowUnsandboxed: must be true or false"),
        ("sandbox: {network: true}", "sandbox: unknown key 'network'"),
    ],
)
def test_the_policys_sandbox_section_is_checked(tmp_path: Path, text: str, where: str) -> None:
    from keel.guardrails import Policy

    path = tmp_path / "keel.policy.yaml"
    path.write_text(text + "\n")
    with pytest.raises(PolicyError, match=where.replace("(", r"\(").replace(")", r"\)")):
        Policy.load(path)
