"""Permission levels and scopes: what an agent's grants allow.

Levels, each including the ones below it: L0 no tools; L1 read the workspace; L2 write the
workspace; L3 run commands in the sandbox without network; L4 network and external side
effects; L5 unrestricted host access. A scope (`resource:action`) names one kind of
action; a permission grants a scope at a level, and the level must reach the level the
scope needs. `resource:*` grants every action of a resource; an L5 grant of `*:*` grants
everything.
"""

from __future__ import annotations

from collections.abc import Iterable

from keel.types import AgentDefinition, Permission, PermissionLevel

L = PermissionLevel

SCOPE_LEVELS: dict[str, PermissionLevel] = {
    "file:read": L.L1,
    "mcp:call": L.L1,
    "memory:read": L.L1,
    "artifact:read": L.L1,
    "agent:delegate": L.L1,
    "agent:handoff": L.L1,
    "file:write": L.L2,
    "memory:write": L.L2,
    "artifact:write": L.L2,
    "shell:exec": L.L3,
    "network:external": L.L4,
    "git:push": L.L4,
    "package:install": L.L4,
    "secrets:read": L.L4,
    "host:exec": L.L5,
}


def required_level(scope: str) -> PermissionLevel:
    """The level a scope needs; scopes Keel does not know need L4 (external effects)."""
    return SCOPE_LEVELS.get(scope, L.L4)


def covers(granted: str, scope: str) -> bool:
    """Whether the scope `granted` (`file:*`, `*:*`, `shell:exec`) includes `scope`."""
    g_resource, _, g_action = granted.partition(":")
    resource, _, action = scope.partition(":")
    if g_resource not in (resource, "*"):
        return False
    g_action = g_action.split(":", 1)[0]
    return g_action in (action, "*")


def grants(permissions: Iterable[Permission], scope: str) -> bool:
    needed = required_level(scope).rank
    return any(
        covers(p.scope, scope) and p.level.rank >= needed and p.level is not L.L0
        for p in permissions
    )


def missing_scopes(agent: AgentDefinition, scopes: Iterable[str]) -> list[str]:
    """The scopes in `scopes` that `agent`'s permissions do not grant."""
    return [scope for scope in scopes if not grants(agent.permissions, scope)]
