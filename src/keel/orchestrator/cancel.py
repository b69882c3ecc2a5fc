"""Cancellation requests: written by whoever asks (this process or another), picked up by
the process running the session, which stops the work and marks them handled."""

from __future__ import annotations

from dataclasses import dataclass

from keel.errors import IllegalTransition, TaskNotFound
from keel.events import EventLog, NewEvent, kinds, now_us
from keel.guardrails.approvals import ATTENTION_CHANNEL
from keel.ids import new_id
from keel.registry.sessions import SessionRegistry
from keel.registry.tasks import TaskRegistry
from keel.store import Tx


@dataclass(frozen=True, slots=True)
class CancelRequest:
    id: str
    task_id: str | None
    reason: str
    actor: str


def request_in(
    tx: Tx, run_id: str, session_id: str, task_id: str | None, reason: str, actor: str
) -> CancelRequest:
    """Record a request to cancel a session (or one of its tasks) that has not ended."""
    session = SessionRegistry.get_in(tx, session_id)
    if session.status.is_final:
        raise IllegalTransition(f"session {session_id}", session.status.value, "cancelled", [])
    if task_id is not None:
        task = TaskRegistry.get_in(tx, task_id)
        if task.session_id != session_id:
            raise TaskNotFound(f"no task '{task_id}' in session {session_id}")
        if task.status.is_final:
            raise IllegalTransition(f"task {task_id}", task.status.value, "cancelled", [])
    request = CancelRequest(new_id("c"), task_id, reason, actor)
    tx.execute(
        "INSERT INTO cancel_requests (id, session_id, task_id, reason, actor, requested_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (request.id, session_id, task_id, reason, actor, now_us()),
    )
    tx.notify(ATTENTION_CHANNEL, session_id)
    payload = {"reason": reason, **({"taskId": task_id} if task_id else {})}
    EventLog.append_in(
        tx, session_id, run_id, [NewEvent(kinds.CANCEL_REQUESTED, actor, payload, task_id)]
    )
    return request


def pending_in(tx: Tx, session_id: str) -> list[CancelRequest]:
    rows = tx.fetchall(
        "SELECT id, task_id, reason, actor FROM cancel_requests "
        "WHERE session_id = ? AND handled_at IS NULL ORDER BY requested_at",
        (session_id,),
    )
    return [CancelRequest(*row) for row in rows]


def handled_in(tx: Tx, requests: list[CancelRequest]) -> None:
    stamp = now_us()
    tx.executemany(
        "UPDATE cancel_requests SET handled_at = ? WHERE id = ?",
        [(stamp, request.id) for request in requests],
    )
