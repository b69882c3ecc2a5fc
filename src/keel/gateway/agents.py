"""Which agents a session started through a protocol gets: the team the gateway was
started with (by default Keel's built-in team on scripted models, `default_team`), or
agents named by the caller, each found in that team or else in the registry at its latest
version."""

from __future__ import annotations

from collections.abc import Sequence

from keel.cli.builtin_team import default_team
from keel.errors import UnknownAgent
from keel.orchestrator import Keel
from keel.types import AgentDefinition

__all__ = ["choose_agents", "default_team"]


async def choose_agents(
    keel: Keel, team: Sequence[AgentDefinition], names: Sequence[str] | None
) -> list[AgentDefinition]:
    """`team` when no names are given; else each named agent, from `team` or the registry.
    An unknown name raises `UnknownAgent` listing the names that would work."""
    if not names:
        return list(team)
    own = {agent.name: agent for agent in team}
    chosen: list[AgentDefinition] = []
    for name in dict.fromkeys(names):
        if name in own:
            chosen.append(own[name])
            continue
        try:
            chosen.append(await keel.agents.get(name))
        except UnknownAgent:
            registered = [agent.name for agent in await keel.agents.latest()]
            known = ", ".join(sorted({*own, *registered})) or "none"
            raise UnknownAgent(f"no agent named '{name}'; known agents: {known}") from None
    return chosen
