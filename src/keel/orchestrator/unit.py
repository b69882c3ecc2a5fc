"""The pieces a step is made of: the node that runs, the writes it buffers (`Unit`), and how
a flow ends (`Outcome`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from keel.events import EventLog, NewEvent
from keel.store import Tx
from keel.types import JsonObject, SessionStatus

Op = Callable[[Tx], object]


@dataclass(frozen=True, slots=True)
class Node:
    """One unit of work of a session: an agent turn, a plan, a function step ..."""

    id: str
    kind: str
    task_id: str | None = None

    def to_json(self) -> JsonObject:
        data: JsonObject = {"node": self.id, "kind": self.kind}
        if self.task_id is not None:
            data["taskId"] = self.task_id
        return data

    @staticmethod
    def from_json(data: JsonObject) -> Node:
        return Node(id=data["node"], kind=data["kind"], task_id=data.get("taskId"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a flow ended: the session's final status, answer and final event payload."""

    status: SessionStatus
    final_answer: str | None = None
    payload: JsonObject | None = None


Publish = Callable[[list[NewEvent]], Awaitable[object]]


class Unit:
    """The writes of one step, applied in order in one transaction at the checkpoint.

    `publish` writes events at once, outside the step, for progress that should be seen
    while the step runs (streamed model output, retries); they are not part of its result.
    """

    __slots__ = ("_items", "_publish", "ends", "run_id", "session_id")

    def __init__(self, session_id: str, run_id: str, publish: Publish | None = None) -> None:
        self.session_id = session_id
        self.run_id = run_id
        self._items: list[Op | list[NewEvent]] = []
        self._publish = publish
        self.ends = False
        """This step ends the session (its final transition is among the writes)."""

    async def publish(
        self, type: str, payload: JsonObject, *, task_id: str | None = None, actor: str = "keel"
    ) -> None:
        event = NewEvent(type, actor, payload, task_id)
        if self._publish is None:
            self.emit(type, payload, task_id=task_id, actor=actor)
        else:
            await self._publish([event])

    def emit(
        self,
        type: str,
        payload: JsonObject | None = None,
        *,
        task_id: str | None = None,
        actor: str = "keel",
    ) -> None:
        event = NewEvent(type, actor, payload if payload is not None else {}, task_id)
        if self._items and isinstance(self._items[-1], list):
            self._items[-1].append(event)
        else:
            self._items.append([event])

    def do(self, op: Op) -> None:
        """Run `op(tx)` inside the step's transaction, in order with the events."""
        self._items.append(op)

    def apply(self, tx: Tx) -> int:
        """Write the step; return the session's last event sequence number after it."""
        seq = 0
        for item in self._items:
            if isinstance(item, list):
                seq = EventLog.append_in(tx, self.session_id, self.run_id, item)
            else:
                item(tx)
                seq = 0
        return seq or EventLog.last_seq_in(tx, self.session_id)
