"""Routing: which registered agent takes a task, and why.

Rules first: the agents with the task's role that declare every capability it needs;
among several, the least loaded (ties go to the first by name). When the rules find no
one, a router agent (role `router`), if the session has one, chooses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from keel.errors import PlanError
from keel.types import AgentDefinition

ROUTER_ROLE = "router"


class NoRoute(PlanError):
    """No agent matches a task's role and capabilities."""


@dataclass(frozen=True, slots=True)
class Route:
    agent: AgentDefinition
    reason: str


def route(
    role: str,
    agents: Sequence[AgentDefinition],
    load: dict[str, int],
    needs: Sequence[str] = (),
) -> Route:
    """Pick an agent with `role` and every capability in `needs`; among several, the one
    given the fewest tasks so far, so work spreads across a team."""
    with_role = sorted((a for a in agents if a.role == role), key=lambda a: a.name)
    candidates = [a for a in with_role if set(needs) <= set(a.capabilities)]
    if not candidates:
        roles = ", ".join(sorted({a.role for a in agents})) or "none"
        if with_role:
            raise NoRoute(
                f"no agent with the role '{role}' has the capabilities {', '.join(needs)}"
            )
        raise NoRoute(f"no agent has the role '{role}' (registered roles: {roles})")
    chosen = min(candidates, key=lambda a: load.get(a.name, 0))
    wanted = f" with {', '.join(needs)}" if needs else ""
    if len(candidates) == 1:
        reason = f"the only agent with role '{role}'{wanted}"
    else:
        count = load.get(chosen.name, 0)
        reason = f"role '{role}'{wanted}: least loaded of {len(candidates)} ({count} tasks)"
    return Route(chosen, reason)


def router_prompt(
    goal: str, role: str, needs: Sequence[str], agents: Sequence[AgentDefinition]
) -> str:
    listed = "\n".join(
        f"- {a.name} (role {a.role}; capabilities: {', '.join(a.capabilities) or 'none'})"
        for a in agents
        if a.role != ROUTER_ROLE
    )
    wanted = f"; capabilities wanted: {', '.join(needs)}" if needs else ""
    return (
        f"Task: {goal}\nRole asked for: {role}{wanted}\n\nAgents:\n{listed}\n\n"
        "No agent matches exactly. Answer with the name of the agent best suited, and "
        "nothing else."
    )


def read_router_answer(answer: str, agents: Sequence[AgentDefinition]) -> AgentDefinition:
    names = {a.name: a for a in agents if a.role != ROUTER_ROLE}
    for word in re.findall(r"[A-Za-z][A-Za-z0-9_.-]*", answer):
        if word in names:
            return names[word]
    raise NoRoute(
        f"the router answered {answer.strip()[:80]!r}, which names no agent "
        f"(agents: {', '.join(sorted(names))})"
    )
