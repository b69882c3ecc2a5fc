"""The orchestrator owns the flow of a session: plan, route, run nodes, checkpoint."""

from __future__ import annotations

from keel.orchestrator.flow import Flow
from keel.orchestrator.functions import FunctionFlow, FunctionState
from keel.orchestrator.loop import RunLoop
from keel.orchestrator.runtime import Keel
from keel.orchestrator.team import TeamFlow
from keel.orchestrator.team_state import TeamState
from keel.orchestrator.unit import Node, Outcome, Unit

__all__ = [
    "Flow",
    "FunctionFlow",
    "FunctionState",
    "Keel",
    "Node",
    "Outcome",
    "RunLoop",
    "TeamFlow",
    "TeamState",
    "Unit",
]
