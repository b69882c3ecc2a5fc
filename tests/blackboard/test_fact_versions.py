"""Facts are versioned per (scope, key); a stale write is a conflict that changes nothing;
the history keeps every value with who wrote it, when, and from which event."""

from __future__ import annotations

import asyncio

import pytest
from board import Board

from keel.blackboard import (
    FactConflict,
    FactKind,
    FactKindMismatch,
    FactNotFound,
    InvalidFact,
    session_scope,
)
from keel.blackboard.facts import MAX_VALUE_BYTES
from keel.events import kinds


async def test_versions_start_at_one_and_increase_per_scope_and_key(board: Board) -> None:
    session = await board.session()
    coder = board.actor(session, "project")
    first = await board.facts.write(coder, "api/url", "http://a")
    second = await board.facts.write(coder, "api/url", {"url": "http://b", "port": 80})
    other_key = await board.facts.write(coder, "db/url", "sqlite://")
    other_scope = await board.facts.write(coder, "api/url", "http://p", scope="project")
    assert (first.version, second.version, other_key.version, other_scope.version) == (1, 2, 1, 1)
    assert first.scope == session_scope(session)
    assert other_scope.scope == "project:p1"
    current = await board.facts.read(coder, "api/url", scope="session")
    assert current.value == {"url": "http://b", "port": 80}
    assert current.version == 2
    assert current.kind is FactKind.FACT


async def test_a_write_with_the_current_version_succeeds(board: Board) -> None:
    coder = board.actor(await board.session())
    created = await board.facts.write(coder, "plan", ["a"], expected_version=0)
    updated = await board.facts.write(coder, "plan", ["a", "b"], expected_version=1)
    assert (created.version, updated.version) == (1, 2)


async def test_a_stale_write_is_a_conflict_and_changes_nothing(board: Board) -> None:
    session = await board.session()
    coder = board.actor(session)
    await board.facts.write(coder, "plan", "v1")
    await board.facts.write(coder, "plan", "v2")
    events_before = await board.keel.events.last_seq(session)
    with pytest.raises(FactConflict) as caught:
        await board.facts.write(coder, "plan", "stale", expected_version=1)
    assert (caught.value.expected, caught.value.current) == (1, 2)
    assert "retry with expected_version 2" in str(caught.value)
    assert (await board.facts.read(coder, "plan")).value == "v2"
    assert [f.value for f in await board.facts.history(coder, "plan")] == ["v1", "v2"]
    assert await board.keel.events.last_seq(session) == events_before


async def test_expected_version_zero_means_the_key_must_not_exist(board: Board) -> None:
    coder = board.actor(await board.session())
    await board.facts.write(coder, "owner", "coder", expected_version=0)
    with pytest.raises(FactConflict, match="already exists at version 1"):
        await board.facts.write(coder, "owner", "tester", expected_version=0)
    with pytest.raises(FactConflict, match="does not exist"):
        await board.facts.write(coder, "missing", 1, expected_version=3)
    assert (await board.facts.read(coder, "owner")).value == "coder"


async def test_concurrent_writers_expecting_the_same_version_have_exactly_one_winner(
    board: Board,
) -> None:
    session = await board.session()
    writers = [board.actor(session, agent=f"agent{i}") for i in range(8)]
    await board.facts.write(writers[0], "lock/owner", None)
    results = await asyncio.gather(
        *(board.facts.write(w, "lock/owner", w.agent, expected_version=1) for w in writers),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, FactConflict) and r.current == 2 for r in losers)
    current = await board.facts.read(writers[0], "lock/owner")
    assert current.version == 2
    assert current.value == winners[0].value == current.agent
    assert len(await board.facts.history(writers[0], "lock/owner")) == 2


async def test_history_keeps_every_value_with_its_provenance_and_event(board: Board) -> None:
    session = await board.session()
    task = await board.keel.tasks.create(board.keel.run_id, session_id=session, goal="g")
    coder = board.actor(session, agent="coder", task_id=task.id)
    tester = board.actor(session, agent="tester")
    await board.facts.write(coder, "status", "red")
    board.clock.advance(1)
    await board.facts.write(tester, "status", "green", ttl_s=60)
    history = await board.facts.history(coder, "status")
    assert [(f.version, f.value, f.agent, f.task_id) for f in history] == [
        (1, "red", "coder", task.id),
        (2, "green", "tester", None),
    ]
    assert history[0].written_at < history[1].written_at
    assert history[1].expires_at is not None
    for fact in history:
        assert fact.session_id == session
        event = await board.event(fact.event_id)
        assert event.type == kinds.FACT_WRITTEN
        assert event.actor == fact.agent
        assert event.task_id == fact.task_id
        assert event.payload["key"] == "status"
        assert event.payload["version"] == fact.version
    assert "expiresAt" in (await board.event(history[1].event_id)).payload


async def test_a_decision_cannot_be_overwritten_as_a_plain_fact(board: Board) -> None:
    coder = board.actor(await board.session())
    await board.decisions.record(coder, key="db", decision="use sqlite", rationale="embedded")
    with pytest.raises(FactKindMismatch, match="record_decision"):
        await board.facts.write(coder, "db", "postgres")
    assert (await board.facts.read(coder, "db")).kind is FactKind.DECISION


async def test_an_unknown_key_is_not_found(board: Board) -> None:
    coder = board.actor(await board.session())
    with pytest.raises(FactNotFound, match="no fact 'nope'"):
        await board.facts.read(coder, "nope")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", 1, "non-empty key"),
        ("a\nb", 1, "control characters"),
        ("k" * 201, 1, "longer than 200"),
        ("k", {1, 2}, "not JSON"),
        ("k", "x" * (MAX_VALUE_BYTES + 1), "store it as an artifact"),
    ],
)
async def test_a_bad_key_or_value_is_refused(
    board: Board, key: str, value: object, message: str
) -> None:
    coder = board.actor(await board.session())
    with pytest.raises(InvalidFact, match=message):
        await board.facts.write(coder, key, value)
