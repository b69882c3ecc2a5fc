"""An expired fact is invisible at once and purged later by a sweep; its history stays."""

from __future__ import annotations

import pytest
from board import Board

from keel.blackboard import FactConflict, FactNotFound, InvalidFact


async def test_an_expired_fact_is_invisible_at_once(board: Board) -> None:
    coder = board.actor(await board.session())
    await board.facts.write(coder, "lease", "coder", ttl_s=30)
    await board.facts.write(coder, "forever", 1)
    board.clock.advance(29.9)
    assert (await board.facts.read(coder, "lease")).value == "coder"
    board.clock.advance(0.1)
    with pytest.raises(FactNotFound, match="has expired"):
        await board.facts.read(coder, "lease")
    assert [f.key for f in await board.facts.visible(coder)] == ["forever"]


async def test_an_expired_fact_counts_as_absent_for_the_next_write(board: Board) -> None:
    coder = board.actor(await board.session())
    await board.facts.write(coder, "lease", "coder", ttl_s=10)
    board.clock.advance(11)
    with pytest.raises(FactConflict, match="does not exist"):
        await board.facts.write(coder, "lease", "tester", expected_version=1)
    renewed = await board.facts.write(coder, "lease", "tester", expected_version=0)
    assert renewed.version == 2
    assert renewed.expires_at is None


async def test_a_sweep_purges_expired_facts_and_keeps_their_history(board: Board) -> None:
    coder = board.actor(await board.session())
    await board.facts.write(coder, "short", "a", ttl_s=5)
    await board.facts.write(coder, "long", "b", ttl_s=500)
    await board.facts.write(coder, "forever", "c")
    assert await board.facts.sweep() == 0
    board.clock.advance(6)
    assert await board.facts.sweep() == 1
    assert await board.facts.sweep() == 0
    rows = await board.keel.engine.read(lambda tx: tx.fetchall("SELECT key FROM facts"))
    assert sorted(row[0] for row in rows) == ["forever", "long"]
    assert [f.value for f in await board.facts.history(coder, "short")] == ["a"]


async def test_versions_continue_after_a_sweep(board: Board) -> None:
    coder = board.actor(await board.session())
    await board.facts.write(coder, "lease", "a", ttl_s=1)
    await board.facts.write(coder, "lease", "b", ttl_s=1)
    board.clock.advance(2)
    await board.facts.sweep()
    again = await board.facts.write(coder, "lease", "c", expected_version=0)
    assert again.version == 3
    assert [f.version for f in await board.facts.history(coder, "lease")] == [1, 2, 3]


@pytest.mark.parametrize("ttl_s", [0, -1, float("nan"), 1e12])
async def test_a_time_to_live_must_be_positive_and_bounded(board: Board, ttl_s: float) -> None:
    coder = board.actor(await board.session())
    with pytest.raises(InvalidFact, match="must be positive"):
        await board.facts.write(coder, "k", 1, ttl_s=ttl_s)
