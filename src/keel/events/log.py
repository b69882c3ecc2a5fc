"""The event log: append-only, a gap-free sequence per session, readable and followable.

Events are written inside the caller's transaction (`append_in`) so that a state change
and its event commit together, or never. Followers in this process are woken right after
the commit; followers in other processes are woken by the commit's signal on
`EVENTS_CHANNEL` where the engine has signals (PostgreSQL), and poll in any case, so
nothing depends on a notification arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from keel.store import Engine, Row, Tx
from keel.types import JsonObject, TraceEvent

_COLUMNS = "session_id, seq, run_id, task_id, actor, type, payload, ts"

EVENTS_CHANNEL = "keel_events"
"""Signalled with the session id by every commit that appends to a session's events."""


def now_us() -> int:
    return time.time_ns() // 1000


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dump_json(value: object) -> str:
    """Compact JSON, as stored in the event log and checkpoints."""
    return _ENCODE(value)


@dataclass(slots=True)
class NewEvent:
    """An event not yet written: the log assigns its sequence number and time."""

    type: str
    actor: str = "keel"
    payload: JsonObject = field(default_factory=dict)
    task_id: str | None = None


def _event(row: Row) -> TraceEvent:
    session_id, seq, run_id, task_id, actor, kind, payload, ts = row
    return TraceEvent(
        id=f"{session_id}:{seq}",
        seq=seq,
        run_id=run_id,
        session_id=session_id,
        task_id=task_id,
        actor=actor,
        type=kind,
        payload=json.loads(payload),
        timestamp=datetime.fromtimestamp(ts / 1_000_000, UTC),
    )


class EventLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wakeups: dict[str, asyncio.Event] = {}
        self._followers = 0
        self._unsubscribe: Callable[[], None] | None = None

    # -- writing -----------------------------------------------------------------------

    @staticmethod
    def last_seq_in(tx: Tx, session_id: str) -> int:
        row = tx.fetchone("SELECT MAX(seq) FROM events WHERE session_id = ?", (session_id,))
        return int(row[0]) if row and row[0] is not None else 0

    @staticmethod
    def append_in(tx: Tx, session_id: str, run_id: str, events: Sequence[NewEvent]) -> int:
        """Append `events` inside an open transaction; return the last sequence number."""
        tx.lock(f"events:{session_id}")
        last = EventLog.last_seq_in(tx, session_id)
        if not events:
            return last
        tx.notify(EVENTS_CHANNEL, session_id)
        ts = now_us()
        rows = []
        for event in events:
            last += 1
            rows.append(
                (
                    session_id,
                    last,
                    run_id,
                    event.task_id,
                    event.actor,
                    event.type,
                    dump_json(event.payload),
                    ts,
                )
            )
        tx.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return last

    async def append(self, session_id: str, run_id: str, events: Sequence[NewEvent]) -> int:
        last = await self._engine.write(lambda tx: self.append_in(tx, session_id, run_id, events))
        self.notify(session_id)
        return last

    def notify(self, session_id: str) -> None:
        """Wake this process's followers of `session_id` (call after a commit)."""
        wakeup = self._wakeups.pop(session_id, None)
        if wakeup is not None:
            wakeup.set()

    def _signalled(self, session_id: str | None) -> None:
        """A commit (in any process) appended to `session_id`; None: to any session."""
        if session_id is not None:
            self.notify(session_id)
            return
        wakeups, self._wakeups = self._wakeups, {}
        for wakeup in wakeups.values():
            wakeup.set()

    def _start_following(self) -> None:
        """Listen for other processes' commits while anything here follows a session."""
        self._followers += 1
        if self._unsubscribe is None:
            self._unsubscribe = self._engine.subscribe(EVENTS_CHANNEL, self._signalled)

    def _stop_following(self) -> None:
        self._followers -= 1
        if not self._followers and self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            unsubscribe()

    # -- reading -----------------------------------------------------------------------

    async def read(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[TraceEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE session_id = ? AND seq > ? ORDER BY seq"
        params: tuple[object, ...] = (session_id, after)
        if limit is not None:
            sql += " LIMIT ?"
            params = (session_id, after, limit)
        rows = await self._engine.read(lambda tx: tx.fetchall(sql, params))
        return [_event(row) for row in rows]

    async def last_seq(self, session_id: str) -> int:
        return await self._engine.read(lambda tx: self.last_seq_in(tx, session_id))

    async def follow(
        self,
        session_id: str,
        after: int = 0,
        *,
        until: Collection[str] = (),
        poll_interval: float = 0.25,
    ) -> AsyncIterator[TraceEvent]:
        """Yield the session's events after `after` as they are appended, forever or until
        an event whose type is in `until` has been yielded."""
        cursor = after
        self._start_following()
        try:
            while True:
                wakeup = self._wakeups.setdefault(session_id, asyncio.Event())
                batch = await self.read(session_id, cursor, limit=500)
                for event in batch:
                    cursor = event.seq
                    yield event
                    if event.type in until:
                        return
                if batch:
                    continue
                # Not wait_for: on Python 3.11 it swallows a cancellation that arrives with
                # a wake-up, and a follower that was stopped would follow on.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll_interval):
                        await wakeup.wait()
        finally:
            self._stop_following()
