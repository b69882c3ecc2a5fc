"""Checkpoints: where a session stands, kept as the event log plus periodic snapshots.

A node's checkpoint is its `workflow.node.exit` event, which carries its result. The state
after any step is the last snapshot with the results logged after it reduced onto it, in
log order; the nodes entered and not yet exited are the ones that were running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel

from keel.errors import StoreError
from keel.events import dump_json, kinds, now_us
from keel.orchestrator.flow import Flow
from keel.orchestrator.unit import Node
from keel.store import Tx
from keel.types import JsonObject

S = TypeVar("S", bound=BaseModel)

SNAPSHOT_EVERY = 50
"""A full snapshot every this many steps bounds the replay on resume."""

_REPLAYED = (kinds.NODE_ENTER, kinds.NODE_EXIT)


@dataclass(slots=True)
class Checkpoint(Generic[S]):
    """Steps finished, the state after them, and the nodes running (by id, in entry order)."""

    step: int
    state: S
    running: dict[str, Node] = field(default_factory=dict)


@dataclass(slots=True)
class Stored:
    """A snapshot as stored, and the enter/exit events written after it."""

    step: int
    snapshot: JsonObject
    since: list[tuple[str, JsonObject]]


def read_in(tx: Tx, session_id: str) -> Stored | None:
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
    return Stored(int(row[0]), json.loads(row[2]), [(k, json.loads(p)) for k, p in since])


def replay(session_id: str, stored: Stored, flow: Flow[S]) -> Checkpoint[S]:
    """The snapshot with every result logged after it reduced onto it."""
    checkpoint = Checkpoint(
        step=stored.step,
        state=flow.state_type.model_validate(stored.snapshot["state"]),
        running={n["node"]: Node.from_json(n) for n in stored.snapshot["running"]},
    )
    for kind, data in stored.since:
        if kind == kinds.NODE_ENTER:
            checkpoint.running[data["node"]] = Node.from_json(data)
            continue
        node = checkpoint.running.pop(data["node"], None)
        if node is None:
            raise StoreError(
                f"the event log of session {session_id} has an exit of node "
                f"'{data['node']}' that was never entered; the log is damaged"
            )
        checkpoint.state = flow.reduce(checkpoint.state, node, data.get("result", {}))
        checkpoint.step += 1
    return checkpoint


def snapshot_in(
    tx: Tx, session_id: str, step: int, seq: int, running: dict[str, Node], state: BaseModel
) -> None:
    body = dump_json(
        {
            "running": [node.to_json() for node in running.values()],
            "state": state.model_dump(mode="json"),
        }
    )
    tx.execute(
        "INSERT INTO checkpoints (session_id, step, seq, state, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET step = excluded.step, "
        "seq = excluded.seq, state = excluded.state, updated_at = excluded.updated_at",
        (session_id, step, seq, body, now_us()),
    )
