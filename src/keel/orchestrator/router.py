"""Routing: which registered agent takes a task, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keel.errors import PlanError
from keel.types import AgentDefinition


@dataclass(frozen=True, slots=True)
class Route:
    agent: AgentDefinition
    reason: str


def route(role: str, agents: Sequence[AgentDefinition], load: dict[str, int]) -> Route:
    """Pick an agent with `role`; among several, the one given the fewest tasks so far
    (ties go to the first by name), so work spreads across a team."""
    candidates = sorted((a for a in agents if a.role == role), key=lambda a: a.name)
    if not candidates:
        roles = ", ".join(sorted({a.role for a in agents})) or "none"
        raise PlanError(f"no agent has the role '{role}' (registered roles: {roles})")
    chosen = min(candidates, key=lambda a: load.get(a.name, 0))
    if len(candidates) == 1:
        reason = f"the only agent with role '{role}'"
    else:
        reason = (
            f"role '{role}': least loaded of {len(candidates)} ({load.get(chosen.name, 0)} tasks)"
        )
    return Route(chosen, reason)
