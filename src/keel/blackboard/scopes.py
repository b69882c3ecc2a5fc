"""Memory scopes: which blackboard scopes an agent may read and write.

A scope on the blackboard is concrete: `session:<session id>`, `project:<project id>` or
`global`. An agent's memory scope grants its own session's scope (`session`), adds its
project's (`project`), then the global one (`global`); `none` grants nothing. Reading and
writing are granted alike. A caller names a scope by level (`"project"`: this actor's
project) or concretely (`"session:s_1"`); either resolves to a concrete scope or raises
`ScopeViolation`.

This module only decides. Recording a refused attempt as an event is the stores' work
(`authorize`), since it needs the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from keel.blackboard.errors import ScopeViolation
from keel.events import EventLog, NewEvent, kinds
from keel.store import Engine
from keel.types import JsonObject, MemoryScope

T = TypeVar("T")


class ScopeLevel(StrEnum):
    SESSION = "session"
    PROJECT = "project"
    GLOBAL = "global"


GLOBAL_SCOPE = "global"

_LEVELS: dict[MemoryScope, tuple[ScopeLevel, ...]] = {
    MemoryScope.NONE: (),
    MemoryScope.SESSION: (ScopeLevel.SESSION,),
    MemoryScope.PROJECT: (ScopeLevel.SESSION, ScopeLevel.PROJECT),
    MemoryScope.GLOBAL: (ScopeLevel.SESSION, ScopeLevel.PROJECT, ScopeLevel.GLOBAL),
}


def session_scope(session_id: str) -> str:
    return f"session:{session_id}"


def project_scope(project: str) -> str:
    return f"project:{project}"


def scope_level(scope: str) -> ScopeLevel | None:
    """The level of a concrete scope, or None when `scope` is not one."""
    if scope == GLOBAL_SCOPE:
        return ScopeLevel.GLOBAL
    level, _, name = scope.partition(":")
    if name and level in (ScopeLevel.SESSION, ScopeLevel.PROJECT):
        return ScopeLevel(level)
    return None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on the blackboard, and so what it may see: an agent working in one session
    (on one task, in one run), with its memory scope and the project of the session.

    The session, task, agent and run are also the provenance of whatever it writes."""

    agent: str
    session_id: str
    run_id: str
    memory_scope: MemoryScope
    project: str | None = None
    task_id: str | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        """The concrete scopes this actor may read and write, narrowest first."""
        found: list[str] = []
        for level in _LEVELS[self.memory_scope]:
            if level is ScopeLevel.SESSION:
                found.append(session_scope(self.session_id))
            elif level is ScopeLevel.PROJECT:
                if self.project:
                    found.append(project_scope(self.project))
            else:
                found.append(GLOBAL_SCOPE)
        return tuple(found)

    def resolve(self, scope: str, action: str) -> str:
        """The concrete scope `scope` names for this actor; `ScopeViolation` when the actor
        may not `action` ("read" or "write") it."""
        allowed = self.scopes
        if scope in tuple(ScopeLevel):
            concrete = self._concrete(ScopeLevel(scope))
        elif scope_level(scope) is not None:
            concrete = scope
        else:
            raise ScopeViolation(
                f"'{scope}' is not a blackboard scope; name one of session, project, global "
                "(or a concrete scope such as 'session:<id>')"
            )
        if concrete is None or concrete not in allowed:
            raise ScopeViolation(self._refusal(action, scope, allowed))
        return concrete

    def readable(self, scope: str | None) -> tuple[str, ...]:
        """The scopes a read of `scope` looks in: that one, or, for None, every scope this
        actor may read, narrowest first. `ScopeViolation` when that is none."""
        if scope is not None:
            return (self.resolve(scope, "read"),)
        if not self.scopes:
            raise ScopeViolation(self._refusal("read", "any scope", ()))
        return self.scopes

    def _concrete(self, level: ScopeLevel) -> str | None:
        if level is ScopeLevel.SESSION:
            return session_scope(self.session_id)
        if level is ScopeLevel.PROJECT:
            return project_scope(self.project) if self.project else None
        return GLOBAL_SCOPE

    def _refusal(self, action: str, scope: str, allowed: tuple[str, ...]) -> str:
        who = f"agent '{self.agent}' (memory scope '{self.memory_scope.value}')"
        if not allowed:
            return (
                f"{who} may not {action} the blackboard at all; give the agent a memory "
                "scope of session, project or global to use it"
            )
        wants_project = _LEVELS[self.memory_scope][1:2] == (ScopeLevel.PROJECT,)
        if scope == ScopeLevel.PROJECT and wants_project and not self.project:
            return f"{who} may not {action} 'project': session {self.session_id} has no project"
        return f"{who} may not {action} '{scope}'; it may {action} only {', '.join(allowed)}"


async def authorize(
    engine: Engine,
    actor: Actor,
    action: str,
    subject: JsonObject,
    check: Callable[[], T],
    notify: Callable[[str], None] | None = None,
) -> T:
    """Run `check` (one of `actor`'s scope checks) and return what it returns. A refusal
    is recorded as a `blackboard.denied` event of the actor's session, then raised."""
    try:
        return check()
    except ScopeViolation as violation:
        payload: JsonObject = {
            "agent": actor.agent,
            "action": action,
            "memoryScope": actor.memory_scope.value,
            **subject,
            "reason": str(violation),
        }
        event = NewEvent(kinds.BLACKBOARD_DENIED, actor.agent, payload, actor.task_id)
        await engine.write(
            lambda tx: EventLog.append_in(tx, actor.session_id, actor.run_id, [event])
        )
        if notify is not None:
            notify(actor.session_id)
        raise
