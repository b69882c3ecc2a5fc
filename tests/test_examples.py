"""The examples a user copies stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.registry import load_folder

EXAMPLES = Path(__file__).parent.parent / "examples"
TEAMS = sorted(p for p in EXAMPLES.glob("*-team") if any(p.glob("*.yaml")))


@pytest.mark.parametrize("folder", TEAMS, ids=[p.name for p in TEAMS])
def test_every_example_team_is_valid(folder: Path) -> None:
    agents = load_folder(folder)
    assert {agent.role for agent in agents} >= {"planner"}
