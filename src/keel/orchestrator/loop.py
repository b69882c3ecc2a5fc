"""The run loop: load the checkpoint, pick the next node, run it, checkpoint, repeat.

A `Flow` decides what runs; the loop makes it durable. A node's checkpoint is its
`workflow.node.exit` event, which carries the node's result: the state after any node is
the last snapshot with the results since then reduced onto it. Each node's effects (task
changes, events), its exit and the `workflow.node.enter` of the node that follows commit
in one transaction, so a step costs one commit; every `SNAPSHOT_EVERY` steps that
transaction also writes a snapshot of the whole state, which bounds the replay.

A process that dies resumes from the last checkpoint: finished nodes are not run again,
and the node that was entered but not finished runs again without a second `enter` event.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from keel.errors import SessionNotResumable, StoreError
from keel.events import EventLog, NewEvent, dump_json, kinds, now_us
from keel.registry.sessions import SessionRegistry
from keel.store import Engine, Tx
from keel.types import JsonObject, SessionStatus

S = TypeVar("S", bound=BaseModel)
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

    __slots__ = ("_items", "_publish", "run_id", "session_id")

    def __init__(self, session_id: str, run_id: str, publish: Publish | None = None) -> None:
        self.session_id = session_id
        self.run_id = run_id
        self._items: list[Op | list[NewEvent]] = []
        self._publish = publish

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


class Flow(ABC, Generic[S]):
    """What a session does. The loop calls `start` once, then `next`/`run`/`reduce` until
    `next` returns None, then `outcome`. `run` may be called again for the same node after a
    crash, so it must not have effects outside the `Unit` that it cannot repeat."""

    state_type: type[S]

    @abstractmethod
    def start(self, unit: Unit) -> S: ...

    @abstractmethod
    def next(self, state: S) -> Node | None: ...

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

    @abstractmethod
    def outcome(self, state: S, unit: Unit) -> Outcome: ...


SNAPSHOT_EVERY = 50

_REPLAYED = (kinds.NODE_ENTER, kinds.NODE_EXIT)


@dataclass(slots=True)
class Checkpoint(Generic[S]):
    """Where a session stands: steps finished, the state after them, the node entered."""

    step: int
    node: Node | None
    state: S


@dataclass(slots=True)
class _Stored:
    """A snapshot as stored, and the enter/exit events written after it."""

    step: int
    snapshot: JsonObject
    since: list[tuple[str, JsonObject]]


def _read_in(tx: Tx, session_id: str) -> _Stored | None:
    row = tx.fetchone(
        "SELECT step, seq, state FROM checkpoints WHERE session_id = ?", (session_id,)
    )
    if row is None:
        return None
    since = tx.fetchall(
        "SELECT type, payload FROM events WHERE session_id = ? AND seq > ? "
        "AND type IN (?, ?) ORDER BY seq",
        (session_id, row[1], *_REPLAYED),
    )
    return _Stored(int(row[0]), json.loads(row[2]), [(k, json.loads(p)) for k, p in since])


def _replay(session_id: str, stored: _Stored, flow: Flow[S]) -> Checkpoint[S]:
    """The snapshot with every result logged after it reduced onto it."""
    node_data = stored.snapshot["node"]
    checkpoint = Checkpoint(
        step=stored.step,
        node=Node.from_json(node_data) if node_data is not None else None,
        state=flow.state_type.model_validate(stored.snapshot["state"]),
    )
    for kind, data in stored.since:
        if kind == kinds.NODE_ENTER:
            checkpoint.node = Node.from_json(data)
            continue
        if checkpoint.node is None or checkpoint.node.id != data["node"]:
            raise StoreError(
                f"the event log of session {session_id} has an exit of node "
                f"'{data['node']}' that was never entered; the log is damaged"
            )
        checkpoint.state = flow.reduce(checkpoint.state, checkpoint.node, data.get("result", {}))
        checkpoint.step += 1
        checkpoint.node = None
    return checkpoint


def _snapshot_in(
    tx: Tx, session_id: str, step: int, seq: int, node: Node | None, state: BaseModel
) -> None:
    body = dump_json(
        {"node": node.to_json() if node else None, "state": state.model_dump(mode="json")}
    )
    tx.execute(
        "INSERT INTO checkpoints (session_id, step, seq, state, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET step = excluded.step, "
        "seq = excluded.seq, state = excluded.state, updated_at = excluded.updated_at",
        (session_id, step, seq, body, now_us()),
    )


class RunLoop:
    def __init__(self, engine: Engine, events: EventLog, run_id: str) -> None:
        self._engine = engine
        self._events = events
        self.run_id = run_id

    def _publisher(self, session_id: str) -> Publish:
        async def publish(events: list[NewEvent]) -> None:
            await self._events.append(session_id, self.run_id, events)

        return publish

    async def load_checkpoint(self, session_id: str, flow: Flow[S]) -> Checkpoint[S] | None:
        stored = await self._engine.read(lambda tx: _read_in(tx, session_id))
        return _replay(session_id, stored, flow) if stored is not None else None

    async def _commit(
        self, unit: Unit, step: int, node: Node | None, state: BaseModel, *, snapshot: bool
    ) -> None:
        def work(tx: Tx) -> None:
            seq = unit.apply(tx)
            if snapshot:
                _snapshot_in(tx, unit.session_id, step, seq, node, state)

        await self._engine.write(work)
        self._events.notify(unit.session_id)

    def _advance(self, flow: Flow[S], state: S, unit: Unit) -> Node | None:
        """Pick the next node and buffer its entry, or buffer the session's end."""
        node = flow.next(state)
        if node is not None:
            unit.emit(kinds.NODE_ENTER, node.to_json(), task_id=node.task_id)
            flow.enter(node, state, unit)
            return node
        end = flow.outcome(state, unit)
        run_id = unit.run_id
        unit.do(
            lambda tx: SessionRegistry.transition_in(
                tx,
                run_id,
                unit.session_id,
                end.status,
                final_answer=end.final_answer,
                payload=end.payload,
            )
        )
        return None

    async def run(self, session_id: str, flow: Flow[S]) -> S:
        """Run `session_id` with `flow` to its end, starting or resuming as needed."""
        checkpoint = await self.load_checkpoint(session_id, flow)
        if checkpoint is None:
            unit = Unit(session_id, self.run_id)
            unit.do(
                lambda tx: SessionRegistry.transition_in(
                    tx, self.run_id, session_id, SessionStatus.RUNNING
                )
            )
            unit.emit(kinds.SESSION_STARTED, {"runId": self.run_id})
            state = flow.start(unit)
            step = 0
            node = self._advance(flow, state, unit)
            await self._commit(unit, step, node, state, snapshot=True)
            resumed: Node | None = None
        else:
            state, step, node = checkpoint.state, checkpoint.step, checkpoint.node
            if node is None:
                raise SessionNotResumable(f"session {session_id} has already ended")
            unit = Unit(session_id, self.run_id)
            unit.emit(kinds.SESSION_RESUMED, {"runId": self.run_id, "step": step, **node.to_json()})
            await self._commit(unit, step, node, state, snapshot=False)
            resumed = node

        publish = self._publisher(session_id)
        while node is not None:
            unit = Unit(session_id, self.run_id, publish)
            result = flow.on_resume(node, state, unit) if node is resumed else None
            if result is None:
                result = await flow.run(node, state, unit)
            state = flow.reduce(state, node, result)
            exit_payload: JsonObject = {"node": node.id}
            if result:
                exit_payload["result"] = result
            unit.emit(kinds.NODE_EXIT, exit_payload, task_id=node.task_id)
            step += 1
            node = self._advance(flow, state, unit)
            await self._commit(unit, step, node, state, snapshot=step % SNAPSHOT_EVERY == 0)
        return state
