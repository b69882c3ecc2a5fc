"""The five blackboard tools, end to end through the tool executor and its guardrails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from board import Board

from keel.blackboard import FactKind, session_scope
from keel.events import kinds
from keel.guardrails import required_level
from keel.models import ToolCall
from keel.tools import ToolContext, ToolExecutor
from keel.tools.blackboard import blackboard_tools
from keel.types import AgentDefinition, MemoryScope, Permission

SCOPES = ("memory:read", "memory:write", "artifact:read", "artifact:write")


def agent(name: str, memory: MemoryScope, scopes: tuple[str, ...] = SCOPES) -> AgentDefinition:
    granted = [Permission(level=required_level(scope), scope=scope) for scope in scopes]
    return AgentDefinition(
        name=name, role="worker", model="scripted:worker", permissions=granted, memory_scope=memory
    )


class Harness:
    """One agent calling the blackboard tools in one session, as a turn would."""

    def __init__(self, board: Board, definition: AgentDefinition, session_id: str, task_id: str):
        self.board = board
        self.agent = definition
        self.context = ToolContext(Path("."), session_id, task_id, definition.name)
        self.executor = ToolExecutor(
            blackboard_tools(
                board.facts,
                board.decisions,
                board.artifacts,
                memory_scope=definition.memory_scope,
                run_id=board.keel.run_id,
                project="p1",
            )
        )
        self.emitted: list[tuple[str, dict[str, object]]] = []
        self._calls = 0

    async def call(self, tool: str, **arguments: object) -> tuple[bool, str]:
        self._calls += 1
        call = ToolCall(id=f"c{self._calls}", name=tool, arguments=arguments)
        outcome = await self.executor.execute(
            self.agent, call, self.context, lambda kind, data: self.emitted.append((kind, data))
        )
        return outcome.ok, outcome.output


async def harness(board: Board, name: str, memory: MemoryScope, **kwargs: object) -> Harness:
    session = await board.session()
    task = await board.keel.tasks.create(board.keel.run_id, session_id=session, goal="g")
    definition = agent(name, memory, **kwargs)  # type: ignore[arg-type]
    return Harness(board, definition, session, task.id)


async def test_write_then_read_a_fact_with_its_version(board: Board) -> None:
    coder = await harness(board, "coder", MemoryScope.PROJECT)
    ok, out = await coder.call("blackboard_write", key="api", value={"url": "http://x"})
    assert ok, out
    assert out == f"wrote 'api' version 1 in {session_scope(coder.context.session_id)}"
    ok, out = await coder.call(
        "blackboard_write", key="style", value="ruff", scope="project", ttl_s=60
    )
    assert ok, out
    assert "version 1 in project:p1, expires at" in out
    ok, out = await coder.call("blackboard_read", key="api")
    assert ok, out
    shown = json.loads(out)
    assert shown["value"] == {"url": "http://x"}
    assert (shown["version"], shown["kind"], shown["writtenBy"]) == (1, "fact", "coder")
    fact = await board.facts.read(board.actor(coder.context.session_id), "api")
    assert fact.task_id == coder.context.task_id
    assert [kind for kind, _ in coder.emitted] == ["guardrail.decision"] * 3


async def test_a_stale_write_and_a_missing_key_are_tool_errors(board: Board) -> None:
    coder = await harness(board, "coder", MemoryScope.SESSION)
    await coder.call("blackboard_write", key="plan", value=1)
    await coder.call("blackboard_write", key="plan", value=2)
    ok, out = await coder.call("blackboard_write", key="plan", value=3, expected_version=1)
    assert not ok
    assert "not at the expected version 1" in out
    assert "retry with expected_version 2" in out
    ok, out = await coder.call("blackboard_read", key="nothing")
    assert not ok
    assert "no fact 'nothing'" in out


async def test_a_scope_violation_is_a_tool_error_and_an_event(board: Board) -> None:
    coder = await harness(board, "coder", MemoryScope.SESSION)
    ok, out = await coder.call("blackboard_write", key="k", value=1, scope="global")
    assert not ok
    assert "may not write 'global'" in out
    [denied] = await board.events(coder.context.session_id, kinds.BLACKBOARD_DENIED)
    assert denied.actor == "coder"
    assert denied.task_id == coder.context.task_id


async def test_a_none_agent_gets_nothing_from_the_blackboard(board: Board) -> None:
    linter = await harness(board, "linter", MemoryScope.NONE)
    for tool, arguments in [
        ("blackboard_read", {"key": "k"}),
        ("blackboard_write", {"key": "k", "value": 1}),
        ("artifact_put", {"name": "n", "content": "c"}),
    ]:
        ok, out = await linter.call(tool, **arguments)
        assert not ok
        assert "may not" in out
        assert "at all" in out
    denied = await board.events(linter.context.session_id, kinds.BLACKBOARD_DENIED)
    assert len(denied) == 3


async def test_the_guardrails_run_before_the_blackboard(board: Board) -> None:
    reader = await harness(board, "reader", MemoryScope.GLOBAL, scopes=("memory:read",))
    ok, out = await reader.call("blackboard_write", key="k", value=1)
    assert not ok
    assert "not granted memory:write" in out
    assert reader.emitted[-1][1]["verdict"] == "deny"
    assert await board.events(reader.context.session_id, kinds.BLACKBOARD_DENIED) == []


async def test_record_decision_pins_the_facts_it_rests_on(board: Board) -> None:
    planner = await harness(board, "planner", MemoryScope.SESSION)
    await planner.call("blackboard_write", key="load", value=50)
    await planner.call("blackboard_write", key="load", value=80)
    ok, out = await planner.call(
        "record_decision",
        key="db",
        decision="use SQLite",
        rationale="80 rps fits",
        alternatives=["PostgreSQL"],
        rests_on=[{"key": "load"}],
    )
    assert ok, out
    assert out.endswith("resting on load@2")
    ok, out = await planner.call("blackboard_read", key="db")
    shown = json.loads(out)
    assert shown["kind"] == FactKind.DECISION.value
    assert shown["value"]["decidedBy"] == "planner"
    assert shown["value"]["alternatives"] == ["PostgreSQL"]
    ok, out = await planner.call(
        "record_decision", decision="d", rationale="r", rests_on=[{"key": "gone"}]
    )
    assert not ok
    assert "'gone'" in out


async def test_artifact_put_then_get_returns_the_text(board: Board) -> None:
    coder = await harness(board, "coder", MemoryScope.SESSION)
    ok, out = await coder.call(
        "artifact_put", name="report.md", content="# Done\n", type="document"
    )
    assert ok, out
    artifact_id = out.split()[2]
    assert "(document, 7 bytes, sha256:" in out
    ok, out = await coder.call("artifact_get", id=artifact_id)
    assert (ok, out) == (True, "# Done\n")
    [linked] = await board.artifacts.list(task_id=coder.context.task_id)
    assert linked.id == artifact_id


async def test_artifact_get_refuses_corrupted_and_unknown_artifacts(board: Board) -> None:
    coder = await harness(board, "coder", MemoryScope.SESSION)
    _, out = await coder.call("artifact_put", name="a.txt", content="abc", type="file")
    artifact, _ = await board.artifacts.get(out.split()[2])
    assert artifact.checksum is not None
    blob = board.artifacts.path(artifact.checksum.removeprefix("sha256:"))
    blob.chmod(0o644)
    blob.write_text("abd")
    ok, out = await coder.call("artifact_get", id=artifact.id)
    assert not ok
    assert "corrupted" in out
    ok, out = await coder.call("artifact_get", id="a_nope")
    assert not ok
    assert "no artifact 'a_nope'" in out


@pytest.mark.parametrize(
    ("tool", "scope", "read_only"),
    [
        ("blackboard_read", "memory:read", True),
        ("blackboard_write", "memory:write", False),
        ("record_decision", "memory:write", False),
        ("artifact_put", "artifact:write", False),
        ("artifact_get", "artifact:read", True),
    ],
)
def test_each_tool_declares_its_permission_scope(tool: str, scope: str, read_only: bool) -> None:
    tools = blackboard_tools(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        memory_scope=MemoryScope.SESSION,
        run_id="r_1",
    )
    assert tools[tool].scopes == (scope,)
    assert tools[tool].read_only is read_only
    assert tools[tool].spec().parameters["type"] == "object"
