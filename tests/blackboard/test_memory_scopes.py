"""An agent's memory scope decides what it may see and write: none, its session, its
project, global. Going beyond it is a clear error and a `blackboard.denied` event."""

from __future__ import annotations

import pytest
from board import Board

from keel.blackboard import (
    GLOBAL_SCOPE,
    Actor,
    FactNotFound,
    ScopeViolation,
    project_scope,
    session_scope,
)
from keel.events import kinds
from keel.types import MemoryScope


def actor(session_id: str, memory: MemoryScope, project: str | None = "p1") -> Actor:
    return Actor("coder", session_id, "r_1", memory, project=project)


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        (MemoryScope.NONE, ()),
        (MemoryScope.SESSION, ("session:s1",)),
        (MemoryScope.PROJECT, ("session:s1", "project:p1")),
        (MemoryScope.GLOBAL, ("session:s1", "project:p1", "global")),
    ],
)
def test_each_memory_scope_grants_its_scopes_narrowest_first(
    memory: MemoryScope, expected: tuple[str, ...]
) -> None:
    assert actor("s1", memory).scopes == expected


def test_without_a_project_there_is_no_project_scope() -> None:
    agent = actor("s1", MemoryScope.GLOBAL, project=None)
    assert agent.scopes == ("session:s1", "global")
    with pytest.raises(ScopeViolation, match="has no project"):
        agent.resolve("project", "write")


async def test_sessions_do_not_see_each_others_session_facts(board: Board) -> None:
    a, b = await board.session(), await board.session()
    in_a, in_b = board.actor(a, "global"), board.actor(b, "global")
    await board.facts.write(in_b, "secret", "b's")
    with pytest.raises(FactNotFound):
        await board.facts.read(in_a, "secret")
    assert await board.facts.visible(in_a) == []
    with pytest.raises(ScopeViolation, match=f"may not read '{session_scope(b)}'"):
        await board.facts.read(in_a, "secret", scope=session_scope(b))
    with pytest.raises(ScopeViolation):
        await board.facts.write(in_a, "secret", "overwritten", scope=session_scope(b))
    with pytest.raises(ScopeViolation):
        await board.facts.history(in_a, "secret", scope=session_scope(b))
    assert (await board.facts.read(in_b, "secret")).value == "b's"


async def test_a_project_fact_is_shared_by_the_sessions_of_the_project_only(
    board: Board,
) -> None:
    a, b, c = await board.session(), await board.session(), await board.session()
    writer = board.actor(a, "project", project="p1")
    same_project = board.actor(b, "project", project="p1")
    other_project = board.actor(c, "project", project="p2")
    session_only = board.actor(b, "session", project="p1")
    await board.facts.write(writer, "style", "black", scope="project")
    assert (await board.facts.read(same_project, "style")).value == "black"
    with pytest.raises(FactNotFound):
        await board.facts.read(other_project, "style")
    with pytest.raises(FactNotFound):
        await board.facts.read(session_only, "style")
    with pytest.raises(ScopeViolation):
        await board.facts.read(session_only, "style", scope="project")


async def test_a_session_agent_cannot_write_global_and_the_attempt_is_an_event(
    board: Board,
) -> None:
    session = await board.session()
    task = await board.keel.tasks.create(board.keel.run_id, session_id=session, goal="g")
    coder = board.actor(session, "session", task_id=task.id)
    with pytest.raises(ScopeViolation) as caught:
        await board.facts.write(coder, "policy", "yolo", scope="global")
    message = str(caught.value)
    assert "agent 'coder' (memory scope 'session') may not write 'global'" in message
    assert session_scope(session) in message
    admin = board.actor(session, "global")
    with pytest.raises(FactNotFound):
        await board.facts.read(admin, "policy", scope=GLOBAL_SCOPE)
    [denied] = await board.events(session, kinds.BLACKBOARD_DENIED)
    assert denied.actor == "coder"
    assert denied.task_id == task.id
    assert denied.payload["action"] == "write"
    assert denied.payload["scope"] == "global"
    assert denied.payload["key"] == "policy"
    assert denied.payload["memoryScope"] == "session"
    assert await board.events(session, kinds.FACT_WRITTEN) == []


async def test_a_none_agent_cannot_read_or_write_at_all(board: Board) -> None:
    session = await board.session()
    await board.facts.write(board.actor(session), "plan", "p")
    silent = board.actor(session, "none", agent="linter")
    with pytest.raises(ScopeViolation, match="may not read the blackboard at all"):
        await board.facts.read(silent, "plan")
    with pytest.raises(ScopeViolation, match="may not write the blackboard at all"):
        await board.facts.write(silent, "plan", "mine")
    with pytest.raises(ScopeViolation):
        await board.decisions.record(silent, decision="d", rationale="r")
    assert await board.facts.visible(silent) == []
    denied = await board.events(session, kinds.BLACKBOARD_DENIED)
    assert [(e.actor, e.payload["action"]) for e in denied] == [
        ("linter", "read"),
        ("linter", "write"),
        ("linter", "write"),
    ]


async def test_a_read_without_a_scope_finds_the_narrowest_value(board: Board) -> None:
    session = await board.session()
    agent = board.actor(session, "global")
    await board.facts.write(agent, "model", "global-default", scope="global")
    await board.facts.write(agent, "model", "project-choice", scope="project")
    assert (await board.facts.read(agent, "model")).scope == project_scope("p1")
    await board.facts.write(agent, "model", "session-override")
    assert (await board.facts.read(agent, "model")).value == "session-override"
    assert (await board.facts.read(agent, "model", scope="global")).value == "global-default"


async def test_visible_lists_every_fact_and_decision_an_agent_may_see(board: Board) -> None:
    session, other = await board.session(), await board.session()
    agent = board.actor(session, "project")
    neighbour = board.actor(other, "project")
    await board.facts.write(neighbour, "hidden", 0)
    await board.facts.write(neighbour, "elsewhere", 0, scope="project")
    await board.facts.write(board.actor(session, "global"), "everyone", 1, scope="global")
    await board.facts.write(agent, "shared", 2, scope="project")
    await board.facts.write(agent, "b", 3)
    await board.facts.write(agent, "a", 4)
    await board.facts.write(agent, "a", 5)
    await board.decisions.record(agent, key="choice", decision="d", rationale="r")
    seen = [(f.scope, f.key, f.version, f.kind.value) for f in await board.facts.visible(agent)]
    own = session_scope(session)
    assert seen == [
        (own, "a", 2, "fact"),
        (own, "b", 1, "fact"),
        (own, "choice", 1, "decision"),
        ("project:p1", "elsewhere", 1, "fact"),
        ("project:p1", "shared", 1, "fact"),
    ]


def test_a_scope_that_is_not_one_is_refused() -> None:
    with pytest.raises(ScopeViolation, match="is not a blackboard scope"):
        actor("s1", MemoryScope.GLOBAL).resolve("team:x", "read")
