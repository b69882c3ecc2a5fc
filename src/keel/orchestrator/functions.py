"""Durable function flows: a chain of Python steps whose state is checkpointed after each.

A step is an async function that receives the flow's data (a JSON object) and returns the
keys to update, or None. A flow that dies resumes at the step that was running; steps that
finished are not run again. Steps with side effects outside Keel should be idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from pydantic import BaseModel, Field

from keel.orchestrator.flow import Flow
from keel.orchestrator.unit import Node, Outcome, Unit
from keel.types import JsonObject, SessionStatus

Step = Callable[[JsonObject], Awaitable[JsonObject | None]]


class FunctionState(BaseModel):
    index: int = 0
    data: JsonObject = Field(default_factory=dict)


class FunctionFlow(Flow[FunctionState]):
    state_type = FunctionState

    def __init__(self, steps: Sequence[Step], data: JsonObject | None = None) -> None:
        if not steps:
            raise ValueError("a function flow needs at least one step")
        self.steps = list(steps)
        self._names = [getattr(step, "__name__", "step") for step in self.steps]
        self._data = dict(data or {})

    def start(self, unit: Unit) -> FunctionState:
        return FunctionState(data=self._data)

    def ready(self, state: FunctionState, running: Collection[str]) -> list[Node]:
        if state.index >= len(self.steps) or running:
            return []
        return [Node(f"{state.index}:{self._names[state.index]}", "step")]

    async def run(self, node: Node, state: FunctionState, unit: Unit) -> JsonObject:
        return await self.steps[state.index](dict(state.data)) or {}

    def reduce(self, state: FunctionState, node: Node, result: JsonObject) -> FunctionState:
        data = {**state.data, **result} if result else state.data
        return FunctionState(index=state.index + 1, data=data)

    def outcome(self, state: FunctionState, unit: Unit) -> Outcome:
        return Outcome(SessionStatus.DONE, None, {"steps": state.index})
