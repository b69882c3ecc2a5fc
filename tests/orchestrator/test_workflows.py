"""Declared workflows: a file is checked before it runs (each problem names the file, the
node and the field); its agent steps, tool steps, fan-outs, conditions and approval gates
run durably, with retries and timeouts per step, and a crashed run resumes without doing
finished steps again."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from keel import Keel
from keel.cli.demo import create_demo_repo
from keel.cli.main import default_team
from keel.cli.workflow_commands import workflow_app
from keel.errors import ModelError
from keel.events import kinds
from keel.models import Message, ToolSpec, register_script
from keel.orchestrator.workflow_checks import check_workflow
from keel.orchestrator.workflow_expr import ExpressionError, evaluate, parse_condition, render
from keel.orchestrator.workflow_spec import WorkflowError, read_workflow
from keel.types import JsonObject, SessionStatus, TaskStatus, TraceEvent

EXAMPLE = Path(__file__).parents[2] / "examples" / "workflows" / "fix-and-verify.yaml"
SHELL = [{"level": "L3", "scope": "shell:exec"}]
READ = [{"level": "L1", "scope": "file:read"}]


class Crash(BaseException):
    """Stands in for the process dying: nothing after it runs."""


def agent(name: str, model: str = "scripted:worker", **extra: Any) -> dict[str, Any]:
    return {"name": name, "role": "worker", "model": model, **extra}


def workflow(start: str, nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "wf", "start": start, "nodes": nodes, **extra}


async def run_workflow(
    keel: Keel,
    spec: dict[str, Any] | Path,
    agents: Sequence[dict[str, Any]],
    workspace: Path,
    **config: Any,
) -> tuple[Any, list[TraceEvent]]:
    session = await keel.create_workflow_session(
        spec, agents, config={"workspace": str(workspace), **config}
    )
    finished = await keel.run(session.id)
    return finished, await keel.events.read(session.id)


def of(events: list[TraceEvent], kind: str) -> list[JsonObject]:
    return [e.payload for e in events if e.type == kind]


def final(events: list[TraceEvent]) -> JsonObject:
    """The payload of the session's last word: completed, failed or cancelled."""
    return next(e.payload for e in reversed(events) if e.type in kinds.SESSION_FINAL)


def assert_log_is_whole(events: list[TraceEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    entered = Counter(e.payload["node"] for e in events if e.type == kinds.NODE_ENTER)
    exited = Counter(e.payload["node"] for e in events if e.type == kinds.NODE_EXIT)
    assert set(entered.values()) == {1}, "a node was entered twice"
    assert entered == exited


async def wait_for(keel: Keel, session_id: str, kind: str) -> TraceEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for event in await keel.events.read(session_id):
            if event.type == kind:
                return event
        await asyncio.sleep(0.02)
    pytest.fail(f"no {kind} event within 10 s")


# -- checking a workflow --------------------------------------------------------------------


def check_file(tmp_path: Path, spec: dict[str, Any]) -> list[str]:
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded, subject = read_workflow(path)
    return check_workflow(loaded, ["coder", "tester"], subject=subject)


@pytest.mark.parametrize(
    ("nodes", "start", "field", "message"),
    [
        (
            {"fix": {"agent": "ghost", "goal": "Fix it"}},
            "fix",
            "nodes.fix.agent",
            "unknown agent 'ghost' (the session's agents: coder, tester)",
        ),
        (
            {"lint": {"tool": "run_linter", "args": {}}},
            "lint",
            "nodes.lint.tool",
            "unknown tool 'run_linter'",
        ),
        (
            {"fix": {"agent": "coder", "goal": "Fix it", "next": "chekcs"}},
            "fix",
            "nodes.fix.next",
            "'chekcs' is not a node",
        ),
        (
            {"fan": {"parallel": ["fix", "nowhere"]}, "fix": {"agent": "coder", "goal": "x"}},
            "fan",
            "nodes.fan.parallel[1]",
            "'nowhere' is not a node",
        ),
        (
            {
                "fix": {"agent": "coder", "goal": "Fix it", "next": "test"},
                "test": {"agent": "tester", "goal": "Test it", "next": "fix"},
            },
            "fix",
            "nodes.fix",
            "an unconditional cycle: fix -> test -> fix",
        ),
        (
            {"fix": {"agent": "coder", "goal": "Fix it"}},
            None,
            "start",
            "missing: name the node the workflow starts at (fix)",
        ),
        (
            {"decide": {"if": "tests = 'ok'", "then": "done", "else": "failed"}},
            "decide",
            "nodes.decide.if",
            "at column 7: unexpected '='",
        ),
        (
            {"fix": {"agent": "coder", "goal": "Fix what {investigate} found"}},
            "fix",
            "nodes.fix.goal",
            "'investigate' names no node",
        ),
        (
            {"unit": {"tool": "run_command", "args": {"command": "make test"}}},
            "unit",
            "nodes.unit.tool",
            "run_command needs shell:exec (level L3): grant it under 'permissions'",
        ),
    ],
)
def test_an_invalid_workflow_names_the_file_the_node_and_the_field(
    tmp_path: Path, nodes: dict[str, Any], start: str | None, field: str, message: str
) -> None:
    spec = {"name": "broken", "nodes": nodes, **({"start": start} if start else {})}
    with pytest.raises(WorkflowError) as caught:
        check_file(tmp_path, spec)
    assert str(tmp_path / "flow.yaml") in str(caught.value)
    assert any(f == field and message in m for f, m in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once_and_a_node_does_one_thing(tmp_path: Path) -> None:
    spec = workflow(
        "a",
        {
            "a": {"agent": "coder", "tool": "glob"},
            "b": {"agent": "coder", "goal": "x", "retries": 3},
            "c": {"if": "'ok' in a", "then": "done"},
        },
    )
    with pytest.raises(WorkflowError) as caught:
        check_file(tmp_path, spec)
    fields = [field for field, _ in caught.value.problems]
    assert fields == ["nodes.a", "nodes.b.retries", "nodes.c.else"]
    assert "a node does one thing" in caught.value.problems[0][1]


def test_a_node_on_two_paths_is_refused_and_an_unreachable_one_is_a_warning(
    tmp_path: Path,
) -> None:
    shared = workflow(
        "fan",
        {
            "fan": {"parallel": ["a", "b"], "next": "merge"},
            "a": {"agent": "coder", "goal": "a", "next": "merge"},
            "b": {"agent": "coder", "goal": "b"},
            "merge": {"agent": "coder", "goal": "merge"},
        },
    )
    with pytest.raises(WorkflowError, match=r"is on the main path .* and on branch 'a' of 'fan'"):
        check_file(tmp_path, shared)
    lonely = workflow("a", {"a": {"agent": "coder", "goal": "a"}, "gate": {"approval": "Ship it?"}})
    assert check_file(tmp_path, lonely) == [
        "nodes.gate: not reachable from start 'a'; it never runs"
    ]


def test_a_loop_through_a_condition_is_allowed(tmp_path: Path) -> None:
    loop = workflow(
        "fix",
        {
            "fix": {"agent": "coder", "goal": "Fix it", "next": "check"},
            "check": {"if": "'pass' in fix", "then": "done", "else": "fix"},
        },
    )
    assert check_file(tmp_path, loop) == []


async def test_a_session_is_not_created_for_an_invalid_workflow(keel: Keel, tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("name: x\nstart: a\nnodes:\n  a: {agent: nobody, goal: hi}\n")
    with pytest.raises(WorkflowError, match=f"{path}: field 'nodes.a.agent': unknown agent"):
        await keel.create_workflow_session(path, [agent("w")])
    assert await keel.sessions.list(10) == []


def test_conditions_are_parsed_not_evaluated_as_python() -> None:
    outputs = {"unit": "exit code 0\nOK", "lint": "exit code 1", "review": "approved"}
    cases = {
        "'exit code 0' in unit": True,
        "'exit code 0' in unit and 'exit code 0' in lint": False,
        "'exit code 0' in unit and not ('exit code 0' in lint)": True,
        "review == 'approved' or lint": True,
        "'FAIL' not in unit": True,
        "never_ran": False,
    }
    for source, expected in cases.items():
        assert evaluate(parse_condition(source), outputs) is expected, source
    for hostile in ("__import__('os').system('true')", "unit[0]", "len(unit) > 2"):
        with pytest.raises(ExpressionError):
            parse_condition(hostile)
    assert render("Fix {unit} {{literally}}", {"unit": "it"}) == "Fix it {literally}"


# -- running ----------------------------------------------------------------------------------


async def test_a_linear_workflow_runs_its_agent_steps_in_order_with_earlier_outputs(
    keel: Keel, tmp_path: Path
) -> None:
    spec = workflow(
        "draft",
        {
            "draft": {"agent": "writer", "goal": "Write a haiku", "next": "review"},
            "review": {"agent": "critic", "goal": "Review this: {draft}"},
        },
    )
    agents = [agent("writer"), agent("critic", "scripted:echo")]
    finished, events = await run_workflow(keel, spec, agents, tmp_path)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer.startswith(
        "Goal: Review this: Done: write a haiku, and checked against the session goal."
    )
    assert "This is step 'review' of the workflow 'wf'." in finished.final_answer
    (root,) = await keel.tasks.tree(finished.id)
    assert root.task.status is TaskStatus.DONE
    children = [(c.task.assigned_agent, c.task.status, c.task.input) for c in root.children]
    assert children == [
        ("writer", TaskStatus.DONE, {"workflow": "wf", "node": "draft", "visit": 1, "attempt": 1}),
        ("critic", TaskStatus.DONE, {"workflow": "wf", "node": "review", "visit": 1, "attempt": 1}),
    ]
    steps = [(e.type, e.payload["step"]) for e in events if e.type.startswith("workflow.step.")]
    assert steps == [
        ("workflow.step.started", "draft#1"),
        ("workflow.step.finished", "draft#1"),
        ("workflow.step.started", "review#1"),
        ("workflow.step.finished", "review#1"),
    ]
    assert_log_is_whole(events)


async def test_a_tool_step_runs_one_call_through_the_guardrails(keel: Keel, tmp_path: Path) -> None:
    spec = workflow(
        "write",
        {
            "write": {
                "tool": "run_command",
                "args": {"command": "echo hi > out.txt"},
                "next": "read",
            },
            "read": {"tool": "read_file", "args": {"path": "out.txt"}},
        },
        permissions=SHELL + READ,
    )
    finished, events = await run_workflow(keel, spec, [agent("w")], tmp_path)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "     1\thi"
    decisions = [e for e in events if e.type == kinds.GUARDRAIL_DECISION]
    assert [(e.actor, e.payload["tool"], e.payload["verdict"]) for e in decisions] == [
        ("workflow", "run_command", "allow"),
        ("workflow", "read_file", "allow"),
    ]
    assert [p["tool"] for p in of(events, kinds.TOOL_CALL)] == ["run_command", "read_file"]
    assert kinds.MODEL_CALL not in {e.type for e in events}
    tasks = await keel.tasks.list(finished.id)
    assert [(t.goal, t.assigned_agent, t.status) for t in tasks[1:]] == [
        ("run_command: echo hi > out.txt", "workflow", TaskStatus.DONE),
        ("read_file: out.txt", "workflow", TaskStatus.DONE),
    ]


def branch_overlap(events: list[TraceEvent], steps: set[str]) -> int:
    """The most agent-step model calls of `steps` that ran at once."""
    tasks = {
        e.task_id
        for e in events
        if e.type == "workflow.step.started" and e.payload["step"] in steps
    }
    running = peak = 0
    for event in events:
        if event.task_id not in tasks or not event.payload.get("node", "").startswith("model:"):
            continue
        if event.type == kinds.NODE_ENTER:
            running += 1
            peak = max(peak, running)
        elif event.type == kinds.NODE_EXIT:
            running -= 1
    return peak


async def test_a_fan_out_runs_its_branches_at_once_and_joins_them_all(
    keel: Keel, tmp_path: Path
) -> None:
    spec = workflow(
        "fan",
        {
            "fan": {"parallel": ["left", "right"], "join": "all", "next": "merge"},
            "left": {"agent": "a", "goal": "Build the left part"},
            "right": {"agent": "b", "goal": "Build the right part"},
            "merge": {"agent": "c", "goal": "Merge: {left} | {right}"},
        },
    )
    agents = [agent("a"), agent("b"), agent("c", "scripted:echo")]
    finished, events = await run_workflow(keel, spec, agents, tmp_path, scriptedLatencyMs=200)

    assert finished.status is SessionStatus.DONE
    assert branch_overlap(events, {"left#1", "right#1"}) == 2
    assert "Merge: Done: build the left part" in finished.final_answer
    assert "| Done: build the right part" in finished.final_answer
    (join,) = of(events, "workflow.join")
    assert join["branches"] == {"left": "done", "right": "done"}
    assert join["ok"] is True


async def test_join_all_waits_for_every_branch_and_fails_naming_the_branch(
    keel: Keel, tmp_path: Path
) -> None:
    spec = workflow(
        "fan",
        {
            "fan": {"parallel": ["broken", "slow"], "join": "all", "next": "never"},
            "broken": {"tool": "read_file", "args": {"path": "missing.txt"}},
            "slow": {"agent": "a", "goal": "Take your time"},
            "never": {"agent": "a", "goal": "Not reached"},
        },
        permissions=READ,
    )
    finished, events = await run_workflow(keel, spec, [agent("a")], tmp_path, scriptedLatencyMs=300)

    assert finished.status is SessionStatus.FAILED
    reason = final(events)["reason"]
    assert reason.startswith("node 'fan' failed: branch 'broken' failed: node 'broken' failed:")
    assert "'missing.txt' does not exist" in reason
    statuses = {t.goal: t.status for t in await keel.tasks.list(finished.id)}
    assert statuses["Take your time"] is TaskStatus.DONE
    assert statuses["read_file: missing.txt"] is TaskStatus.FAILED
    assert "Not reached" not in statuses


async def test_fail_fast_stops_the_other_branches_at_once(keel: Keel, tmp_path: Path) -> None:
    spec = workflow(
        "fan",
        {
            "fan": {"parallel": ["broken", "sleeper"], "join": "fail_fast"},
            "broken": {"tool": "read_file", "args": {"path": "missing.txt"}},
            "sleeper": {"tool": "run_command", "args": {"command": "sleep 30"}},
        },
        permissions=SHELL + READ,
    )
    started = time.perf_counter()
    finished, events = await run_workflow(keel, spec, [agent("a")], tmp_path)

    assert time.perf_counter() - started < 5
    assert finished.status is SessionStatus.FAILED
    assert "branch 'broken' failed" in final(events)["reason"]
    statuses = {t.goal: t.status for t in await keel.tasks.list(finished.id)}
    assert statuses["run_command: sleep 30"] is TaskStatus.CANCELLED
    cancelled = [p for p in of(events, "workflow.step.finished") if p["status"] == "cancelled"]
    assert [(p["step"], p["reason"]) for p in cancelled] == [
        ("sleeper#1", "branch 'broken' of 'fan' failed")
    ]
    assert_log_is_whole(events)


LOOP = {
    "attempt": {
        "tool": "run_command",
        "args": {"command": "echo try >> tries.txt; wc -l < tries.txt"},
        "next": "check",
    },
    "check": {"if": "'3' in attempt", "then": "done", "else": "attempt"},
}


async def test_a_condition_loops_until_it_holds(keel: Keel, tmp_path: Path) -> None:
    spec = workflow("attempt", LOOP, permissions=SHELL, maxVisits=5)
    finished, events = await run_workflow(keel, spec, [agent("a")], tmp_path)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "exit code 0\n3\n"
    branches = [(p["step"], p["value"], p["next"]) for p in of(events, "workflow.branch")]
    assert branches == [
        ("check#1", False, "attempt"),
        ("check#2", False, "attempt"),
        ("check#3", True, "done"),
    ]
    assert all(p["if"] == "'3' in attempt" for p in of(events, "workflow.branch"))


async def test_a_loop_ends_at_max_visits(keel: Keel, tmp_path: Path) -> None:
    nodes = {**LOOP, "attempt": {**LOOP["attempt"], "maxVisits": 2}}
    finished, events = await run_workflow(
        keel, workflow("attempt", nodes, permissions=SHELL), [agent("a")], tmp_path
    )

    assert finished.status is SessionStatus.FAILED
    assert final(events)["reason"] == "node 'attempt' would run a 3rd time; its maxVisits is 2"
    assert final(events)["node"] == "attempt"
    assert (tmp_path / "tries.txt").read_text() == "try\ntry\n"


_flaky: Counter[str] = Counter()


def flaky_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
    """Fails its first call, then answers."""
    _flaky["calls"] += 1
    if _flaky["calls"] == 1:
        raise ModelError("the model returned nonsense")
    return "second time lucky"


async def test_a_failed_step_is_tried_again_after_a_backoff(keel: Keel, tmp_path: Path) -> None:
    _flaky.clear()
    register_script("flaky", flaky_script)
    spec = workflow(
        "think",
        {
            "think": {
                "agent": "thinker",
                "goal": "Think",
                "retry": {"maxAttempts": 2, "backoffS": 0.05},
                "next": "fetch",
            },
            "fetch": {
                "tool": "read_file",
                "args": {"path": "never.txt"},
                "retry": {"maxAttempts": 3, "backoffS": 0.05},
            },
        },
        permissions=READ,
    )
    finished, events = await run_workflow(
        keel, spec, [agent("thinker", "scripted:flaky")], tmp_path
    )

    retries = [(p["step"], p["attempt"], p["delayS"]) for p in of(events, "workflow.step.retry")]
    assert retries == [("think#1", 1, 0.05), ("fetch#1", 1, 0.05), ("fetch#1", 2, 0.1)]
    assert finished.status is SessionStatus.FAILED
    assert final(events)["reason"] == ("node 'fetch' failed: error: 'never.txt' does not exist")
    _, *steps = await keel.tasks.list(finished.id)
    tasks = [(t.input["node"], t.input["attempt"], t.status) for t in steps]
    assert tasks == [
        ("think", 1, TaskStatus.FAILED),
        ("think", 2, TaskStatus.DONE),
        ("fetch", 1, TaskStatus.FAILED),
        ("fetch", 2, TaskStatus.FAILED),
        ("fetch", 3, TaskStatus.FAILED),
    ]
    assert _flaky["calls"] == 2


async def test_a_step_that_runs_past_its_timeout_is_stopped(keel: Keel, tmp_path: Path) -> None:
    spec = workflow(
        "wait",
        {
            "wait": {
                "tool": "run_command",
                "args": {"command": "sleep 30"},
                "timeoutS": 0.3,
                "retry": {"maxAttempts": 2, "backoffS": 0},
                "next": "ponder",
            },
            "ponder": {"agent": "slow", "goal": "Ponder", "timeoutS": 0.3},
        },
        permissions=SHELL,
    )
    started = time.perf_counter()
    finished, events = await run_workflow(keel, spec, [agent("slow")], tmp_path)
    assert time.perf_counter() - started < 5
    assert finished.status is SessionStatus.FAILED
    assert final(events)["reason"] == "node 'wait' failed: timed out after 0.3 s (timeoutS)"
    assert len(of(events, "workflow.step.retry")) == 1

    spec["start"] = "ponder"
    started = time.perf_counter()
    finished, events = await run_workflow(
        keel, spec, [agent("slow")], tmp_path, scriptedLatencyMs=5000
    )
    assert time.perf_counter() - started < 3
    assert final(events)["reason"] == "node 'ponder' failed: timed out after 0.3 s (timeoutS)"


async def test_a_cancelled_workflow_stops_its_commands(keel: Keel, tmp_path: Path) -> None:
    spec = workflow(
        "sleep",
        {"sleep": {"tool": "run_command", "args": {"command": "sleep 30"}}},
        permissions=SHELL,
    )
    session = await keel.create_workflow_session(
        spec, [agent("a")], config={"workspace": str(tmp_path)}
    )
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.TOOL_CALL)
    await keel.cancel(session.id, reason="enough")
    finished = await asyncio.wait_for(running, 5)
    assert finished.status is SessionStatus.CANCELLED
    assert {t.status for t in await keel.tasks.list(session.id)} == {TaskStatus.CANCELLED}


async def test_cancelling_one_step_fails_its_branch_and_the_rest_finish(
    keel: Keel, tmp_path: Path
) -> None:
    spec = workflow(
        "fan",
        {
            "fan": {"parallel": ["slow", "quick"], "join": "all"},
            "slow": {"tool": "run_command", "args": {"command": "sleep 30"}},
            "quick": {"tool": "run_command", "args": {"command": "echo quick"}},
        },
        permissions=SHELL,
    )
    session = await keel.create_workflow_session(
        spec, [agent("a")], config={"workspace": str(tmp_path)}
    )
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.TOOL_CALL)
    slow = next(t for t in await keel.tasks.list(session.id) if t.goal == "run_command: sleep 30")
    await keel.cancel(session.id, slow.id)
    finished = await asyncio.wait_for(running, 5)

    statuses = {t.goal: t.status for t in await keel.tasks.list(session.id)}
    assert statuses["run_command: sleep 30"] is TaskStatus.CANCELLED
    assert statuses["run_command: echo quick"] is TaskStatus.DONE
    assert finished.status is SessionStatus.FAILED
    reason = final(await keel.events.read(session.id))["reason"]
    assert reason == (
        "node 'fan' failed: branch 'slow' failed: node 'slow' failed: its task was cancelled"
    )


# -- approvals ----------------------------------------------------------------------------------


GATED = {
    "build": {"tool": "run_command", "args": {"command": "echo built"}, "next": "ship"},
    "ship": {"approval": "Ship it? The build said: {build}", "next": "deploy"},
    "deploy": {"tool": "run_command", "args": {"command": "echo deployed"}},
}


@pytest.mark.parametrize("allow", [True, False])
async def test_an_approval_gate_waits_for_a_person(keel: Keel, tmp_path: Path, allow: bool) -> None:
    spec = workflow("build", GATED, permissions=SHELL)
    session = await keel.create_workflow_session(
        spec, [agent("a")], config={"workspace": str(tmp_path)}
    )
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.APPROVAL_REQUESTED)
    (pending,) = await keel.approvals.list(session.id)
    assert pending.reasons == ["Ship it? The build said: exit code 0\nbuilt\n"]
    gate = await keel.tasks.get(pending.task_id)
    assert gate.status is TaskStatus.BLOCKED
    await keel.answer(pending.id, allow=allow, note="looks fine" if allow else "not today")
    finished = await asyncio.wait_for(running, 5)

    if allow:
        assert finished.status is SessionStatus.DONE
        assert finished.final_answer == "exit code 0\ndeployed\n"
        assert (await keel.tasks.get(pending.task_id)).status is TaskStatus.DONE
    else:
        assert finished.status is SessionStatus.FAILED
        events = await keel.events.read(session.id)
        assert final(events)["reason"] == "node 'ship' failed: user denied it: not today"


async def test_a_tool_step_the_guardrails_ask_about_waits_for_an_answer(
    keel: Keel, tmp_path: Path
) -> None:
    spec = workflow(
        "reset",
        {"reset": {"tool": "run_command", "args": {"command": "git reset --hard"}}},
        permissions=SHELL,
    )
    session = await keel.create_workflow_session(
        spec, [agent("a")], config={"workspace": str(tmp_path)}
    )
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.APPROVAL_REQUESTED)
    (pending,) = await keel.approvals.list(session.id)
    assert (pending.tool, pending.kind) == ("run_command", "guardrail")
    await keel.answer(pending.id, allow=True)
    finished = await asyncio.wait_for(running, 5)
    assert finished.status is SessionStatus.DONE
    assert "not a git repository" in (finished.final_answer or "")


async def test_a_pending_gate_survives_a_restart(
    home: Path, engine_url: str, tmp_path: Path
) -> None:
    spec = workflow("ship", {"ship": {"approval": "Ship?"}})
    async with await Keel.open(home, database_url=engine_url) as first:
        session = await first.create_workflow_session(
            spec, [agent("a")], config={"workspace": str(tmp_path)}
        )
        running = asyncio.create_task(first.run(session.id))
        await wait_for(first, session.id, kinds.APPROVAL_REQUESTED)
        running.cancel()  # the process goes away while it waits
        with pytest.raises(asyncio.CancelledError):
            await running
    async with await Keel.open(home, database_url=engine_url) as second:
        (pending,) = await second.approvals.list(session.id)
        await second.answer(pending.id, allow=True, actor="ana")
        finished = await second.resume(session.id)
    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "approved by ana"


# -- crashes --------------------------------------------------------------------------------------

_crash: Counter[str] = Counter()


def crashing_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
    _crash["calls"] += 1
    if _crash["calls"] == _crash["at"]:
        raise Crash
    return f"thought about: {messages[-1].content.splitlines()[0]}"


async def test_a_crashed_workflow_resumes_without_redoing_finished_steps(
    home: Path, engine_url: str, tmp_path: Path
) -> None:
    register_script("crashing", crashing_script)
    _crash.clear()
    _crash["at"] = 2
    spec = workflow(
        "first",
        {
            "first": {
                "tool": "run_command",
                "args": {"command": "echo first >> effects.txt"},
                "next": "think",
            },
            "think": {"agent": "thinker", "goal": "Think about {first}", "next": "again"},
            "again": {"agent": "thinker", "goal": "Think again about {think}", "next": "last"},
            "last": {"tool": "run_command", "args": {"command": "echo last >> effects.txt"}},
        },
        permissions=SHELL,
    )
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(spec))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    async with await Keel.open(home, database_url=engine_url) as first:
        session = await first.create_workflow_session(
            path, [agent("thinker", "scripted:crashing")], config={"workspace": str(workspace)}
        )
        with pytest.raises(Crash):
            await first.run(session.id)
    path.unlink()  # the session keeps its workflow
    async with await Keel.open(home, database_url=engine_url) as second:
        finished = await second.resume(session.id)
        events = await second.events.read(session.id)

    assert finished.status is SessionStatus.DONE
    assert (workspace / "effects.txt").read_text() == "first\nlast\n"
    assert _crash["calls"] == 3  # think once, again twice (it died once)
    assert finished.final_answer == "exit code 0\n"
    assert_log_is_whole(events)
    assert len(of(events, kinds.SESSION_RESUMED)) == 1
    agents = [p["agent"] for p in of(events, kinds.MODEL_CALL)]
    assert agents == ["thinker", "thinker"]


async def test_a_crash_inside_a_fan_out_repeats_no_finished_branch(
    home: Path, engine_url: str, tmp_path: Path
) -> None:
    register_script("crashing", crashing_script)
    _crash.clear()
    _crash["at"] = 1
    spec = workflow(
        "fan",
        {
            "fan": {"parallel": ["think", "effect"], "next": "after"},
            "think": {"agent": "thinker", "goal": "Think"},
            "effect": {"tool": "run_command", "args": {"command": "echo once >> effects.txt"}},
            "after": {"tool": "run_command", "args": {"command": "cat effects.txt"}},
        },
        permissions=SHELL,
    )
    config = {"workspace": str(tmp_path), "scriptedLatencyMs": 200}
    async with await Keel.open(home, database_url=engine_url) as first:
        session = await first.create_workflow_session(
            spec, [agent("thinker", "scripted:crashing")], config=config
        )
        with pytest.raises(Crash):
            await first.run(session.id)
    async with await Keel.open(home, database_url=engine_url) as second:
        finished = await second.resume(session.id)
        events = await second.events.read(session.id)
    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "exit code 0\nonce\n"
    assert_log_is_whole(events)


# -- the example and the command --------------------------------------------------------------


async def test_the_example_workflow_fixes_the_demo_repository(keel: Keel, tmp_path: Path) -> None:
    repo = create_demo_repo(tmp_path)
    agents = [a.model_dump(by_alias=True, exclude={"version"}) for a in default_team()]
    finished, events = await run_workflow(keel, EXAMPLE, agents, repo)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "Fixed add(): it subtracted b instead of adding it."
    (branch,) = of(events, "workflow.branch")
    assert (branch["value"], branch["next"]) == (True, "done")
    checks = {p["node"]: p["output"] for p in of(events, "workflow.step.finished") if "output" in p}
    assert checks["unit"].startswith("exit code 0")
    assert checks["leftovers"] == "no matches"
    # the fix is on the session's branch; the user's branch and files are untouched
    assert "return a + b" in await git(repo, "show", f"keel/{finished.id}:calc.py")
    assert "return a - b" in (repo / "calc.py").read_text()
    assert await git(repo, "status", "--porcelain") == ""


async def git(repo: Path, *args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_workflow_is_valid_for_the_built_in_team(path: Path) -> None:
    spec, subject = read_workflow(path)
    assert check_workflow(spec, [a.name for a in default_team()], subject=subject) == []


async def test_the_gated_example_ships_once_a_person_approves(keel: Keel, tmp_path: Path) -> None:
    repo = create_demo_repo(tmp_path)
    agents = [a.model_dump(by_alias=True, exclude={"version"}) for a in default_team()]
    path = EXAMPLE.parent / "fix-review-ship.yaml"
    session = await keel.create_workflow_session(path, agents, config={"workspace": str(repo)})
    running = asyncio.create_task(keel.run(session.id))
    await wait_for(keel, session.id, kinds.APPROVAL_REQUESTED)
    (pending,) = await keel.approvals.list(session.id)
    (question,) = pending.reasons
    assert question.startswith("Ship it? The coder says: Fixed add(): it subtracted b")
    assert "The tester says: The tests pass (Ran 2 tests" in question
    await keel.answer(pending.id, allow=True)
    finished = await asyncio.wait_for(running, 10)
    assert finished.status is SessionStatus.DONE
    assert "return a + b" in await git(repo, "show", f"keel/{finished.id}:calc.py")


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(home: Path | None = None) -> None:
        """Stands in for `keel` and its --home."""

    app.add_typer(workflow_app, name="workflow")
    return app


def test_the_workflow_command_validates_and_runs_a_file(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    result = runner.invoke(cli(), ["workflow", "validate", str(EXAMPLE)], env=env)
    assert result.exit_code == 0, result.output
    assert "workflow 'fix-and-verify' is valid: 6 nodes, starts at 'investigate'" in result.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstart: a\nnodes:\n  a: {agent: ghost, goal: hi, next: b}\n")
    result = runner.invoke(cli(), ["workflow", "validate", str(bad)], env=env)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {bad}",
        "  nodes.a.next: 'b' is not a node (nodes: a; 'done' or 'failed' end the path)",
        "  nodes.a.agent: unknown agent 'ghost' (the session's agents: coder, planner, "
        "reviewer, tester)",
    ]

    args = ["--home", str(home), "workflow", "run", str(EXAMPLE), "--demo", "--plain"]
    result = runner.invoke(cli(), args, env=env)
    assert result.exit_code == 0, result.output
    assert "demo repository: " in result.stdout
    assert "workflow.branch" in result.stdout
    assert "session.completed" in result.stdout
    assert "answer     Fixed add(): it subtracted b instead of adding it." in result.stdout
