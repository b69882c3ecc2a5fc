"""A decision records what was decided, why, the alternatives, who decided, and the exact
fact versions it rests on."""

from __future__ import annotations

import pytest
from board import Board

from keel.blackboard import (
    FactKind,
    FactNotFound,
    FactRef,
    ScopeViolation,
    session_scope,
)
from keel.events import kinds


async def test_a_decision_keeps_its_rationale_alternatives_author_and_basis(
    board: Board,
) -> None:
    session = await board.session()
    planner = board.actor(session, "project", agent="planner")
    await board.facts.write(planner, "load", {"rps": 50})
    await board.facts.write(planner, "load", {"rps": 80})
    await board.facts.write(planner, "team", "python", scope="project")
    recorded = await board.decisions.record(
        planner,
        key="db",
        decision="use SQLite",
        rationale="80 rps fits one file; no server to run",
        alternatives=["PostgreSQL", "DuckDB"],
        rests_on=[
            FactRef(scope="session", key="load"),
            FactRef(scope="project", key="team", version=1),
        ],
    )
    decision = recorded.decision
    assert decision.decision == "use SQLite"
    assert decision.rationale.startswith("80 rps")
    assert decision.alternatives == ["PostgreSQL", "DuckDB"]
    assert decision.decided_by == "planner"
    assert decision.rests_on == [
        FactRef(scope=session_scope(session), key="load", version=2),
        FactRef(scope="project:p1", key="team", version=1),
    ]
    assert recorded.fact.kind is FactKind.DECISION
    assert (recorded.fact.key, recorded.fact.version) == ("db", 1)
    event = await board.event(recorded.fact.event_id)
    assert event.type == kinds.DECISION_RECORDED
    assert event.payload["decision"] == "use SQLite"
    assert event.payload["restsOn"][0] == {
        "scope": session_scope(session),
        "key": "load",
        "version": 2,
    }
    again = await board.decisions.read(board.actor(session, "session", agent="coder"), "db")
    assert again.decision == decision


async def test_decisions_are_listed_apart_from_plain_facts(board: Board) -> None:
    agent = board.actor(await board.session())
    await board.facts.write(agent, "fact", 1)
    first = await board.decisions.record(agent, decision="one", rationale="r")
    second = await board.decisions.record(agent, decision="two", rationale="r")
    listed = await board.decisions.list(agent)
    assert sorted(d.decision.decision for d in listed) == ["one", "two"]
    assert {d.fact.key for d in listed} == {first.fact.key, second.fact.key}
    assert all(d.fact.key.startswith("decision/") for d in listed)
    with pytest.raises(FactNotFound, match="not a decision"):
        await board.decisions.read(agent, "fact")


async def test_revising_a_decision_keeps_the_earlier_one_in_the_history(board: Board) -> None:
    agent = board.actor(await board.session())
    await board.decisions.record(agent, key="db", decision="SQLite", rationale="simple")
    revised = await board.decisions.record(
        agent, key="db", decision="PostgreSQL", rationale="many nodes", expected_version=1
    )
    assert revised.fact.version == 2
    history = await board.facts.history(agent, "db")
    assert [h.value["decision"] for h in history] == ["SQLite", "PostgreSQL"]


async def test_a_decision_cannot_rest_on_a_fact_that_does_not_exist(board: Board) -> None:
    session = await board.session()
    agent = board.actor(session)
    await board.facts.write(agent, "load", 1)
    with pytest.raises(FactNotFound, match="version 7 of 'load'"):
        await board.decisions.record(
            agent,
            decision="d",
            rationale="r",
            rests_on=[FactRef(scope="session", key="load", version=7)],
        )
    with pytest.raises(FactNotFound, match="'ghost'"):
        await board.decisions.record(
            agent, decision="d", rationale="r", rests_on=[FactRef(scope="session", key="ghost")]
        )
    assert await board.decisions.list(agent) == []
    assert await board.events(session, kinds.DECISION_RECORDED) == []


async def test_a_decision_cannot_rest_on_facts_beyond_the_agents_scope(board: Board) -> None:
    session = await board.session()
    agent = board.actor(session, "session")
    with pytest.raises(ScopeViolation, match="may not read 'global'"):
        await board.decisions.record(
            agent, decision="d", rationale="r", rests_on=[FactRef(scope="global", key="x")]
        )
    [denied] = await board.events(session, kinds.BLACKBOARD_DENIED)
    assert (denied.payload["action"], denied.payload["key"]) == ("read", "x")
