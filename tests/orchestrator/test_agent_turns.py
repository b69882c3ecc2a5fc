"""The agent turn loop: model calls and tool calls as checkpointed steps, bad tool calls
fed back to the model, permissions, max turns and budgets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from keel import Keel
from keel.events import kinds
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import SessionStatus, TaskStatus, TraceEvent

READ = {"level": "L1", "scope": "file:read"}
WRITE = {"level": "L2", "scope": "file:write"}


def scripted(name: str, replies: list[Any]) -> str:
    register_script(name, replies)
    return f"scripted:{name}"


def use(*calls: tuple[str, dict[str, Any]], text: str = "", raw: str | None = None) -> Message:
    tool_calls = [
        ToolCall(id=f"c{i}", name=n, arguments=a, invalid_arguments=raw)
        for i, (n, a) in enumerate(calls)
    ]
    return Message(role="assistant", content=text, tool_calls=tool_calls)


def solo(model: str, tools: list[str], permissions: list[dict[str, str]], **extra: Any) -> Any:
    return [
        {
            "name": "solo",
            "role": "worker",
            "model": model,
            "tools": tools,
            "permissions": permissions,
            **extra,
        }
    ]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "notes.txt").write_text("alpha\nbeta\n")
    return root


async def run(
    keel: Keel, agents: Any, workspace: Path, **config: Any
) -> tuple[Any, list[TraceEvent]]:
    session = await keel.create_session(
        "Do the work",
        agents,
        config={"workspace": str(workspace), **config.pop("config", {})},
        **config,
    )
    finished = await keel.run(session.id)
    return finished, await keel.events.read(session.id)


def of(events: list[TraceEvent], kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.type == kind]


async def test_tool_calls_run_and_their_results_go_back_to_the_model(
    keel: Keel, workspace: Path
) -> None:
    seen: list[Sequence[Message]] = []

    def script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        seen.append(list(messages))
        if len(seen) == 1:
            assert {t.name for t in tools} == {"read_file", "write_file"}
            return use(("read_file", {"path": "notes.txt"}), ("read_file", {"path": "nope.txt"}))
        if len(seen) == 2:
            return use(("write_file", {"path": "out.txt", "content": "done"}))
        return "All written."

    register_script("reader-writer", script)
    agents = solo("scripted:reader-writer", ["read_file", "write_file"], [READ, WRITE])
    finished, events = await run(keel, agents, workspace)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "All written."
    assert (workspace / "out.txt").read_text() == "done"
    answers = [m for m in seen[1] if m.role == "tool"]
    assert [m.tool_call_id for m in answers] == ["c0", "c1"]
    assert "alpha" in answers[0].content
    assert answers[1].content == "error: 'nope.txt' does not exist"
    nodes = [p["node"].split(":")[0] for p in of(events, kinds.NODE_ENTER)]
    assert nodes == ["plan", "model", "tools", "model", "tools", "model"]
    results = of(events, kinds.TOOL_RESULT)
    assert [(r["tool"], r["ok"]) for r in results] == [
        ("read_file", True),
        ("read_file", False),
        ("write_file", True),
    ]
    assert len(of(events, kinds.MODEL_CALL)) == 3


async def test_unknown_tools_and_malformed_arguments_are_fed_back_not_crashed(
    keel: Keel, workspace: Path
) -> None:
    model = scripted(
        "clumsy",
        [
            use(("teleport", {"to": "mars"})),
            use(("read_file", {}), text="oops", raw="{path: notes"),
            use(("read_file", {"offset": 0})),
            "Gave up politely.",
        ],
    )
    finished, events = await run(keel, solo(model, ["read_file"], [READ]), workspace)
    assert finished.status is SessionStatus.DONE
    outputs = [r["output"] for r in of(events, kinds.TOOL_RESULT)]
    assert outputs[0] == "error: there is no tool 'teleport' (your tools: read_file)"
    assert outputs[1].startswith("error: the arguments for read_file are not a JSON object")
    assert "'path': Field required" in outputs[2]


async def test_malformed_tool_calls_three_turns_running_fail_the_task(
    keel: Keel, workspace: Path
) -> None:
    bad = use(("read_file", {}), raw="not json")
    model = scripted("garbler", [bad, bad, bad, "never reached"])
    finished, events = await run(keel, solo(model, ["read_file"], [READ]), workspace)
    assert finished.status is SessionStatus.FAILED
    assert "malformed tool calls 3 turns in a row" in of(events, kinds.SESSION_FAILED)[0]["reason"]


async def test_a_call_beyond_the_agents_grant_is_denied_naming_the_scope(
    keel: Keel, workspace: Path
) -> None:
    model = scripted("writer", [use(("write_file", {"path": "x", "content": "y"})), "Denied."])
    finished, events = await run(keel, solo(model, ["write_file"], [READ]), workspace)
    assert finished.status is SessionStatus.DONE
    (decision,) = of(events, kinds.GUARDRAIL_DECISION)
    assert decision["verdict"] == "deny"
    assert decision["missingScopes"] == ["file:write"]
    assert "not granted file:write (level L2)" in of(events, kinds.TOOL_RESULT)[0]["output"]
    assert not (workspace / "x").exists()


async def test_max_turns_ends_the_task_failed_with_the_reason(keel: Keel, workspace: Path) -> None:
    loop = use(("read_file", {"path": "notes.txt"}))
    model = scripted("looper", [loop] * 10)
    finished, events = await run(keel, solo(model, ["read_file"], [READ], maxTurns=3), workspace)
    assert finished.status is SessionStatus.FAILED
    assert "limit of 3 turns" in of(events, kinds.SESSION_FAILED)[0]["reason"]
    assert len(of(events, kinds.MODEL_CALL)) == 3


async def test_a_session_token_budget_fails_the_task_when_crossed(
    keel: Keel, workspace: Path
) -> None:
    loop = use(("read_file", {"path": "notes.txt"}))
    model = scripted("spender", [loop] * 10)
    finished, events = await run(
        keel, solo(model, ["read_file"], [READ]), workspace, budget={"tokensLimit": 120}
    )
    assert finished.status is SessionStatus.FAILED
    (over,) = of(events, kinds.BUDGET_EXCEEDED)
    assert (over["scope"], over["limit"]) == ("session", "tokens")
    assert over["used"] >= 120
    failed = [p for p in of(events, kinds.TASK_STATUS) if p["to"] == "failed"]
    assert "session budget is spent" in failed[0]["reason"]
    usage = of(events, kinds.SESSION_FAILED)[0]
    assert usage["usageByAgent"]["solo"]["input_tokens"] > 0


async def test_a_task_time_budget_stops_a_slow_model_call(keel: Keel, workspace: Path) -> None:
    model = scripted("slowpoke", ["too late"])
    finished, events = await run(
        keel,
        solo(model, [], []),
        workspace,
        config={"scriptedLatencyMs": 2000, "taskBudget": {"timeLimitMs": 150}},
    )
    assert finished.status is SessionStatus.FAILED
    reason = of(events, kinds.SESSION_FAILED)[0]["reason"]
    assert "time budget ran out" in reason
    assert of(events, kinds.MODEL_CALL) == []


async def test_read_only_calls_of_one_turn_run_as_one_step(keel: Keel, workspace: Path) -> None:
    reads = use(("read_file", {"path": "notes.txt"}), ("list_dir", {}), ("glob", {"pattern": "*"}))
    model = scripted("browser", [reads, use(("write_file", {"path": "a", "content": "b"})), "ok"])
    tools = ["read_file", "list_dir", "glob", "write_file"]
    finished, events = await run(keel, solo(model, tools, [READ, WRITE]), workspace)
    assert finished.status is SessionStatus.DONE
    tool_nodes = [p["node"] for p in of(events, kinds.NODE_ENTER) if p["kind"] == "tools"]
    assert len(tool_nodes) == 2  # three reads together, then the write alone


class Crash(BaseException):
    pass


async def crash_in_edit(home: Path, workspace: Path, name: str, **config: Any) -> tuple[str, Any]:
    """A session whose edit_file call dies mid-way (after writing); returns its id."""
    from keel.orchestrator import TeamFlow
    from keel.tools import builtin_tools

    class CrashingEdit(type(builtin_tools()["edit_file"])):  # type: ignore[misc]
        calls = 0

        async def run(self, arguments: Any, context: Any) -> str:
            CrashingEdit.calls += 1
            await super().run(arguments, context)
            raise Crash

    model = scripted(
        name, [use(("edit_file", {"path": "notes.txt", "old": "beta", "new": "gamma"})), "k"]
    )
    agents = solo(model, ["edit_file"], [READ, WRITE])
    async with await Keel.open(home) as first:
        session = await first.create_session(
            "Edit", agents, config={"workspace": str(workspace), **config}
        )
        defs = await first.agents.resolve(session.agent_versions)
        flow = TeamFlow(session, defs, tools={"edit_file": CrashingEdit()}, workspace=workspace)
        with pytest.raises(Crash):
            await first._loop.run(session.id, flow)
    return session.id, CrashingEdit


async def wait_for_approval(keel: Keel, session_id: str) -> Any:
    for _ in range(250):
        pending = await keel.approvals.list(session_id)
        if pending:
            return pending[0]
        await asyncio.sleep(0.02)
    pytest.fail("no approval was requested")


@pytest.mark.parametrize("allow", [False, True])
async def test_a_write_interrupted_by_a_crash_waits_for_a_person_before_running_again(
    home: Path, workspace: Path, allow: bool
) -> None:
    session_id, crashing = await crash_in_edit(home, workspace, f"editor-{allow}")
    async with await Keel.open(home) as second:
        resumed = asyncio.create_task(second.resume(session_id))
        approval = await wait_for_approval(second, session_id)
        assert approval.kind == "interrupted"
        assert approval.tool == "edit_file"
        blocked = [t for t in await second.tasks.list(session_id) if t.status is TaskStatus.BLOCKED]
        assert len(blocked) == 1
        assert not resumed.done()
        await second.answer(approval.id, allow=allow, note="checked the file")
        finished = await asyncio.wait_for(resumed, 5)
        events = await second.events.read(session_id)
    assert crashing.calls == 1
    assert finished.status is SessionStatus.DONE
    assert (workspace / "notes.txt").read_text() == "alpha\ngamma\n"
    (interrupted,) = of(events, kinds.TOOL_INTERRUPTED)
    assert interrupted["tool"] == "edit_file"
    (answered,) = of(events, kinds.APPROVAL_ANSWERED)
    assert answered["decision"] == ("allowed" if allow else "denied")
    (result,) = of(events, kinds.TOOL_RESULT)
    if allow:  # run again: the first run had already made the change
        assert "not found" in result["output"]
    else:
        assert result["output"].startswith("error: not run: a person denied")


async def test_an_unanswered_approval_is_a_deny_at_its_deadline(
    home: Path, workspace: Path
) -> None:
    session_id, _ = await crash_in_edit(home, workspace, "editor-late", approvalTimeoutS=0.3)
    async with await Keel.open(home) as second:
        finished = await asyncio.wait_for(second.resume(session_id), 5)
        events = await second.events.read(session_id)
    assert finished.status is SessionStatus.DONE
    (answered,) = of(events, kinds.APPROVAL_ANSWERED)
    assert answered == {
        "approvalId": answered["approvalId"],
        "decision": "expired",
        "by": "deadline",
    }
    assert of(events, kinds.TOOL_RESULT)[0]["output"].startswith("error: not run")


async def test_a_pending_approval_survives_a_restart_and_can_be_answered_offline(
    home: Path, workspace: Path
) -> None:
    session_id, _ = await crash_in_edit(home, workspace, "editor-offline")
    async with await Keel.open(home) as second:
        waiting = asyncio.create_task(second.resume(session_id))
        approval = await wait_for_approval(second, session_id)
        waiting.cancel()  # the process goes away while the approval is pending
        with pytest.raises(asyncio.CancelledError):
            await waiting
    async with await Keel.open(home) as third:
        (still,) = await third.approvals.list(session_id)
        assert still.id == approval.id
        await third.answer(approval.id, allow=False)
        finished = await asyncio.wait_for(third.resume(session_id), 5)
        with pytest.raises(Exception, match="cannot go from 'denied'"):
            await third.answer(approval.id, allow=True)
    assert finished.status is SessionStatus.DONE


async def test_an_idempotent_call_interrupted_by_a_crash_simply_runs_again(
    home: Path, workspace: Path
) -> None:
    from keel.orchestrator import TeamFlow
    from keel.tools import builtin_tools

    class CrashingRead(type(builtin_tools()["read_file"])):  # type: ignore[misc]
        calls = 0

        async def run(self, arguments: Any, context: Any) -> str:
            CrashingRead.calls += 1
            raise Crash

    model = scripted("re-reader", [use(("read_file", {"path": "notes.txt"})), "read it"])
    agents = solo(model, ["read_file"], [READ])
    async with await Keel.open(home) as first:
        session = await first.create_session("Read", agents, config={"workspace": str(workspace)})
        defs = await first.agents.resolve(session.agent_versions)
        flow = TeamFlow(session, defs, tools={"read_file": CrashingRead()}, workspace=workspace)
        with pytest.raises(Crash):
            await first._loop.run(session.id, flow)
    async with await Keel.open(home) as second:
        finished = await asyncio.wait_for(second.resume(session.id), 5)
        events = await second.events.read(session.id)
    assert CrashingRead.calls == 1
    assert finished.status is SessionStatus.DONE
    assert of(events, kinds.APPROVAL_REQUESTED) == []
    assert of(events, kinds.TOOL_INTERRUPTED) == []
    (result,) = of(events, kinds.TOOL_RESULT)
    assert result["ok"] is True
    assert len(of(events, kinds.TOOL_CALL)) == 1  # journaled once, run twice
