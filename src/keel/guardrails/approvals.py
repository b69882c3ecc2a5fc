"""Human approvals, durable: a request is a row and an event; an answer (from the Python
API, the CLI, later the HTTP API and the IDE) changes the row and writes an event; the
session running the task takes the answer in and marks it applied. No answer by the
deadline is a deny. Requests survive restarts because they are rows, not callbacks.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from keel.errors import IllegalTransition, NotFound
from keel.events import EventLog, NewEvent, dump_json, kinds, now_us
from keel.ids import new_id
from keel.store import Engine, Row, Tx
from keel.types import JsonObject, KeelModel

ATTENTION_CHANNEL = "keel_attention"
"""Signalled with the session id when a running session has something from outside to take
in (an answer here, a cancellation request): the process running it looks at once instead
of at its next poll."""

ApprovalKind = Literal["guardrail", "interrupted"]
ApprovalStatus = Literal["pending", "allowed", "denied", "expired"]

_COLUMNS = (
    "id, session_id, task_id, agent, call_id, tool, arguments, kind, risk, reasons, "
    "requested_at, deadline, status, answered_by, answered_at, remember, note, applied_at"
)


class ApprovalNotFound(NotFound):
    pass


class Approval(KeelModel):
    id: str
    session_id: str
    task_id: str
    agent: str
    call_id: str
    tool: str
    arguments: JsonObject = Field(default_factory=dict)
    kind: ApprovalKind
    risk: int
    reasons: list[str]
    requested_at: int
    deadline: int
    status: ApprovalStatus = "pending"
    answered_by: str | None = None
    answered_at: int | None = None
    remember: bool = False
    note: str | None = None
    applied_at: int | None = None

    @property
    def allowed(self) -> bool:
        return self.status == "allowed"


def _approval(row: Row) -> Approval:
    values = dict(zip([c.strip() for c in _COLUMNS.split(",")], row, strict=True))
    values["arguments"] = json.loads(values["arguments"])
    values["reasons"] = json.loads(values["reasons"])
    values["remember"] = bool(values["remember"])
    return Approval.model_validate(values)


def request_in(
    tx: Tx,
    run_id: str,
    *,
    session_id: str,
    task_id: str,
    agent: str,
    call_id: str,
    tool: str,
    arguments: JsonObject,
    kind: ApprovalKind,
    risk: int,
    reasons: list[str],
    wait_s: float,
    approval_id: str | None = None,
) -> Approval:
    stamp = now_us()
    approval = Approval(
        id=approval_id or new_id("a"),
        session_id=session_id,
        task_id=task_id,
        agent=agent,
        call_id=call_id,
        tool=tool,
        arguments=arguments,
        kind=kind,
        risk=risk,
        reasons=reasons,
        requested_at=stamp,
        deadline=stamp + int(wait_s * 1_000_000),
    )
    tx.execute(
        f"INSERT INTO approvals ({_COLUMNS}) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, NULL, NULL)",
        (
            approval.id,
            session_id,
            task_id,
            agent,
            call_id,
            tool,
            dump_json(arguments),
            kind,
            risk,
            dump_json(reasons),
            approval.requested_at,
            approval.deadline,
            "pending",
        ),
    )
    payload: JsonObject = {
        "approvalId": approval.id,
        "kind": kind,
        "tool": tool,
        "callId": call_id,
        "arguments": arguments,
        "agent": agent,
        "risk": risk,
        "reasons": reasons,
        "deadline": approval.deadline,
    }
    EventLog.append_in(
        tx, session_id, run_id, [NewEvent(kinds.APPROVAL_REQUESTED, agent, payload, task_id)]
    )
    return approval


def get_in(tx: Tx, approval_id: str) -> Approval:
    row = tx.fetchone(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", (approval_id,))
    if row is None:
        raise ApprovalNotFound(f"no approval '{approval_id}'; `keel approvals` lists them")
    return _approval(row)


def answer_in(
    tx: Tx,
    run_id: str,
    approval_id: str,
    *,
    allow: bool,
    actor: str,
    remember: bool = False,
    note: str | None = None,
) -> Approval:
    tx.lock(f"approval:{approval_id}")
    approval = get_in(tx, approval_id)
    status: ApprovalStatus = "allowed" if allow else "denied"
    if approval.status != "pending":
        raise IllegalTransition(f"approval {approval_id}", approval.status, status, [])
    stamp = now_us()
    tx.execute(
        "UPDATE approvals SET status = ?, answered_by = ?, answered_at = ?, remember = ?, "
        "note = ? WHERE id = ?",
        (status, actor, stamp, 1 if remember else 0, note, approval_id),
    )
    tx.notify(ATTENTION_CHANNEL, approval.session_id)
    payload: JsonObject = {
        "approvalId": approval_id,
        "decision": status,
        "by": actor,
        "remember": remember,
    }
    if note:
        payload["note"] = note
    EventLog.append_in(
        tx,
        approval.session_id,
        run_id,
        [NewEvent(kinds.APPROVAL_ANSWERED, actor, payload, approval.task_id)],
    )
    return approval.model_copy(
        update={"status": status, "answered_by": actor, "answered_at": stamp, "remember": remember}
    )


def expire_in(tx: Tx, run_id: str, session_id: str) -> list[Approval]:
    """Deny every pending request of the session whose deadline has passed."""
    stamp = now_us()
    rows = tx.fetchall(
        f"SELECT {_COLUMNS} FROM approvals WHERE session_id = ? AND status = 'pending' "
        "AND deadline <= ?",
        (session_id, stamp),
    )
    expired = [_approval(row) for row in rows]
    for approval in expired:
        tx.execute(
            "UPDATE approvals SET status = 'expired', answered_by = 'deadline', answered_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (stamp, approval.id),
        )
        EventLog.append_in(
            tx,
            session_id,
            run_id,
            [
                NewEvent(
                    kinds.APPROVAL_ANSWERED,
                    "keel",
                    {"approvalId": approval.id, "decision": "expired", "by": "deadline"},
                    approval.task_id,
                )
            ],
        )
    return [a.model_copy(update={"status": "expired"}) for a in expired]


def unapplied_in(tx: Tx, session_id: str) -> list[Approval]:
    rows = tx.fetchall(
        f"SELECT {_COLUMNS} FROM approvals WHERE session_id = ? AND status <> 'pending' "
        "AND applied_at IS NULL ORDER BY answered_at",
        (session_id,),
    )
    return [_approval(row) for row in rows]


def applied_in(tx: Tx, approval_ids: list[str]) -> None:
    stamp = now_us()
    tx.executemany(
        "UPDATE approvals SET applied_at = ? WHERE id = ?", [(stamp, i) for i in approval_ids]
    )


class Approvals:
    """The approvals of a store: list them, and answer them."""

    def __init__(self, engine: Engine, events: EventLog, run_id: str) -> None:
        self._engine = engine
        self._events = events
        self._run_id = run_id

    async def get(self, approval_id: str) -> Approval:
        return await self._engine.read(lambda tx: get_in(tx, approval_id))

    async def list(
        self, session_id: str | None = None, *, pending_only: bool = True
    ) -> list[Approval]:
        sql = f"SELECT {_COLUMNS} FROM approvals"
        clauses, params = [], []
        if session_id is not None:
            clauses.append("session_id = ?")
            params.append(session_id)
        if pending_only:
            clauses.append("status = 'pending'")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY requested_at"
        rows = await self._engine.read(lambda tx: tx.fetchall(sql, tuple(params)))
        return [_approval(row) for row in rows]

    async def answer(
        self,
        approval_id: str,
        *,
        allow: bool,
        actor: str = "user",
        remember: bool = False,
        note: str | None = None,
    ) -> Approval:
        answered = await self._engine.write(
            lambda tx: answer_in(
                tx,
                self._run_id,
                approval_id,
                allow=allow,
                actor=actor,
                remember=remember,
                note=note,
            )
        )
        self._events.notify(answered.session_id)
        return answered
