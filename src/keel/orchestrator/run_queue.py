"""The run queue: sessions waiting for a worker, and the leases of those being run.

A row is due when its lease has ended (or was never taken). A worker claims due rows in one
transaction — on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so workers on many machines
never claim the same row and never wait for each other; on SQLite the single writer does
the same. While it runs a session the worker renews the lease; the commits of the run are
fenced by `check_lease_in`, so a worker that lost its lease (it stalled past the lease and
another worker took over) cannot write a step. A finished session's row is deleted.

A session put on the queue (or handed back for another worker to take at once) signals
`QUEUE_CHANNEL`, so idle workers in every process look at once; they also poll, for leases
that simply ran out.

Every function here runs inside the caller's transaction (`*_in(tx, ...)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.errors import KeelError
from keel.events import EventLog, NewEvent, kinds, now_us
from keel.store import Tx

MAX_CLAIMS = 5
"""A session whose run crashed this many times is failed instead of claimed again."""

QUEUE_CHANNEL = "keel_queue"
"""Signalled with the session id when a session becomes claimable at once."""


class LeaseLost(KeelError):
    """This worker no longer holds the session's lease: another worker runs it now."""


@dataclass(frozen=True, slots=True)
class Claim:
    session_id: str
    claims: int


def enqueue_in(tx: Tx, run_id: str, session_id: str) -> bool:
    """Put a session on the queue; False when it is already there."""
    tx.lock(f"queue:{session_id}")
    if tx.fetchone("SELECT 1 FROM run_queue WHERE session_id = ?", (session_id,)):
        return False
    tx.execute(
        "INSERT INTO run_queue (session_id, enqueued_at) VALUES (?, ?)", (session_id, now_us())
    )
    tx.notify(QUEUE_CHANNEL, session_id)
    EventLog.append_in(tx, session_id, run_id, [NewEvent(kinds.SESSION_QUEUED)])
    return True


def claim_in(tx: Tx, dialect: str, worker_id: str, limit: int, lease_s: float) -> list[Claim]:
    """Take the leases of up to `limit` due sessions, oldest first."""
    now = now_us()
    skip = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
    rows = tx.fetchall(
        "UPDATE run_queue SET worker_id = ?, lease_until = ?, claims = claims + 1 "
        "WHERE session_id IN (SELECT session_id FROM run_queue WHERE lease_until < ? "
        f"ORDER BY lease_until, enqueued_at LIMIT ?{skip}) RETURNING session_id, claims",
        (worker_id, now + int(lease_s * 1_000_000), now, limit),
    )
    return [Claim(str(session_id), int(claims)) for session_id, claims in rows]


def renew_in(tx: Tx, worker_id: str, session_ids: list[str], lease_s: float) -> set[str]:
    """Extend this worker's leases; return the sessions whose lease it no longer holds."""
    if not session_ids:
        return set()
    marks = ", ".join("?" for _ in session_ids)
    rows = tx.fetchall(
        f"UPDATE run_queue SET lease_until = ? WHERE worker_id = ? AND session_id IN ({marks}) "
        "RETURNING session_id",
        (now_us() + int(lease_s * 1_000_000), worker_id, *session_ids),
    )
    return set(session_ids) - {str(row[0]) for row in rows}


def check_lease_in(tx: Tx, worker_id: str, session_id: str) -> None:
    """Refuse the transaction unless this worker still holds the session's lease."""
    row = tx.fetchone(
        "SELECT worker_id, lease_until FROM run_queue WHERE session_id = ?", (session_id,)
    )
    if row is None or row[0] != worker_id or int(row[1]) < now_us():
        raise LeaseLost(f"worker {worker_id} lost the lease of session {session_id}")


def finish_in(tx: Tx, worker_id: str, session_id: str) -> None:
    """The session ended: take it off the queue (if this worker still holds it)."""
    tx.execute(
        "DELETE FROM run_queue WHERE session_id = ? AND worker_id = ?", (session_id, worker_id)
    )


def release_in(
    tx: Tx, worker_id: str, session_id: str, *, delay_s: float = 0.0, error: str | None = None
) -> None:
    """Give the lease back so another worker (or this one) claims the session after
    `delay_s`: on shutdown with no delay, after a crash with a backoff."""
    released = tx.execute(
        "UPDATE run_queue SET worker_id = NULL, lease_until = ?, last_error = COALESCE(?, "
        "last_error) WHERE session_id = ? AND worker_id = ?",
        (now_us() + int(delay_s * 1_000_000), error, session_id, worker_id),
    )
    if released and not delay_s:
        tx.notify(QUEUE_CHANNEL, session_id)


def drop_in(tx: Tx, session_id: str) -> None:
    tx.execute("DELETE FROM run_queue WHERE session_id = ?", (session_id,))


def queued_in(tx: Tx) -> list[tuple[str, str | None, int, int]]:
    """Every queued session: (session id, worker id, lease until, claims)."""
    rows = tx.fetchall(
        "SELECT session_id, worker_id, lease_until, claims FROM run_queue ORDER BY enqueued_at"
    )
    return [(str(a), b, int(c), int(d)) for a, b, c, d in rows]
