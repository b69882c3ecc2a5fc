"""What a session does, as the run loop sees it: a `Flow` names the nodes that may run now,
runs one, and folds its result into the state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Generic, TypeVar

from pydantic import BaseModel

from keel.guardrails.approvals import Approval
from keel.orchestrator.unit import Node, Outcome, Unit
from keel.types import JsonObject

S = TypeVar("S", bound=BaseModel)


class Flow(ABC, Generic[S]):
    """The loop calls `start` once; then, while nodes are ready or running, it runs ready
    nodes (at most `max_concurrency` at a time) and reduces each result into the state as it
    finishes; when nothing is ready and nothing runs, it asks for the `outcome`.

    `run` may be called again for the same node after a crash, so it must not have effects
    outside the `Unit` that it cannot repeat; `reduce` must be a pure function of the state
    and the result (the loop replays it on resume)."""

    state_type: type[S]
    max_concurrency: int = 1

    @abstractmethod
    def start(self, unit: Unit) -> S: ...

    @abstractmethod
    def ready(self, state: S, running: Collection[str]) -> list[Node]:
        """Nodes that may start now, in order; none of them is in `running` (node ids)."""

    def enter(self, node: Node, state: S, unit: Unit) -> None:
        """Buffer the effects of entering `node` (for example: its task starts running)."""

    @abstractmethod
    async def run(self, node: Node, state: S, unit: Unit) -> JsonObject: ...

    def on_resume(self, node: Node, state: S, unit: Unit) -> JsonObject | None:
        """`node` was running when the process died. Return None to run it again, or the
        result to record instead (a call with side effects is never silently repeated)."""
        return None

    @abstractmethod
    def reduce(self, state: S, node: Node, result: JsonObject) -> S: ...

    def cancel(self, state: S, task_ids: Collection[str] | None, unit: Unit) -> tuple[S, set[str]]:
        """Cancel `task_ids` (None: the whole session) and whatever depends on them: buffer
        the effects and return the new state and every task id cancelled. The loop stops
        the running nodes of those tasks."""
        return state, set()

    def waiting(self, state: S) -> bool:
        """True while the flow waits for a person (an approval): the session must not end
        even though nothing is ready or running."""
        return False

    def on_answer(self, state: S, approval: Approval, unit: Unit) -> S:
        """Take a person's answer (or an expired deadline) in: buffer its effects."""
        return state

    @abstractmethod
    def outcome(self, state: S, unit: Unit) -> Outcome: ...
