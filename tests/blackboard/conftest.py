"""A blackboard on the `keel` runtime (so on each engine), with a clock the test moves."""

from __future__ import annotations

import pytest
from board import Board, Clock

from keel import Keel
from keel.blackboard import DecisionLog, FactStore, FileArtifactStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def board(keel: Keel, clock: Clock) -> Board:
    facts = FactStore(keel.engine, events=keel.events, clock=clock)
    artifacts = FileArtifactStore(keel.engine, keel.settings.home / "artifacts", events=keel.events)
    return Board(keel, clock, facts, DecisionLog(facts), artifacts)
