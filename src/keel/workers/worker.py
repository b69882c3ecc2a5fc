"""A worker: claims queued sessions with leases and runs them to their end.

Any number of workers, in any number of processes on any number of machines, share one
queue in the store (see `orchestrator/run_queue.py`). A worker holds a lease on each session
it runs and renews it every `lease_s / 3`; the run's commits are fenced by the lease, so a
worker that stalls past its lease and wakes up again cannot write over the worker that took
the session over. A worker that dies simply stops renewing: when its leases end another
worker claims the sessions and resumes them from their checkpoints, and the tool journal
keeps side effects from happening twice.

A run that crashes (a bug, a lost database connection) is released with a backoff and
claimed again; after `MAX_CLAIMS` claims the session is failed with the last error. A
user mistake found only at run time (a bad workspace path, a missing SDK) fails the session
at once with its message: claiming it again would not help.

An idle worker looks for work every `poll_s`, and at once when a session is queued in this
process or, on PostgreSQL, in any other (a signal on `QUEUE_CHANNEL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from keel.errors import KeelError, NotFound, SessionNotResumable
from keel.events import EventLog, NewEvent, kinds, now_us
from keel.ids import new_id
from keel.orchestrator import Keel
from keel.orchestrator.run_queue import (
    MAX_CLAIMS,
    QUEUE_CHANNEL,
    Claim,
    LeaseLost,
    check_lease_in,
    claim_in,
    finish_in,
    release_in,
    renew_in,
)
from keel.registry.sessions import SessionRegistry
from keel.store import Tx
from keel.types import SessionStatus

log = logging.getLogger("keel.worker")

LEASE_S = 15.0
POLL_S = 0.5
BACKOFF_S = 1.0


@dataclass(slots=True)
class WorkerStats:
    claimed: int = 0
    finished: int = 0
    released: int = 0
    lost: int = 0
    failed: int = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class Worker:
    """Runs queued sessions on `keel`, at most `capacity` at a time."""

    def __init__(
        self,
        keel: Keel,
        *,
        capacity: int = 8,
        lease_s: float = LEASE_S,
        poll_s: float = POLL_S,
        worker_id: str | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("a worker needs a capacity of at least 1")
        self.keel = keel
        self.id = worker_id or new_id("w")
        self.capacity = capacity
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.stats = WorkerStats()
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._handing_back: set[str] = set()
        """Runs that ended and are giving their queue row back: no lease left to renew."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None
        keel.queue_listeners.append(self.nudge)

    def nudge(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def _signalled(self, session_id: str | None) -> None:
        """Another process queued (or handed back) a session, or may have (None)."""
        self.nudge()

    @property
    def running(self) -> list[str]:
        return list(self._runs)

    async def run(self) -> None:
        """Claim and run sessions until cancelled; on the way out, hand back the leases of
        the sessions still running so another worker resumes them at once."""
        engine = self.keel.engine
        await engine.write(self._register_in)
        reaped = await engine.write(self._reap_in)
        if reaped:
            log.info("worker %s: took back the leases of dead workers %s", self.id, reaped)
        renew_every = self.lease_s / 3
        next_renewal = asyncio.get_running_loop().time() + renew_every
        self._unsubscribe = engine.subscribe(QUEUE_CHANNEL, self._signalled)
        try:
            while True:
                self._wake.clear()  # a nudge from now on is for the next look
                free = self.capacity - len(self._runs)
                if free > 0:
                    claims = await engine.write(partial(self._claim_in, limit=free))
                    for claim in claims:
                        self._start(claim)
                now = asyncio.get_running_loop().time()
                if now >= next_renewal:
                    await self._renew()
                    next_renewal = now + renew_every
                wait = min(self.poll_s, max(0.0, next_renewal - now))
                # Not wait_for: on Python 3.11 it swallows a cancellation that arrives as the
                # wake-up does (a run ending as the worker is stopped), and the worker runs on.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
        finally:
            await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        self._stopping = True
        with contextlib.suppress(ValueError):
            self.keel.queue_listeners.remove(self.nudge)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        runs = dict(self._runs)
        for task in runs.values():
            task.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)

        def release(tx: Tx) -> None:
            for session_id in runs:
                release_in(tx, self.id, session_id)
            tx.execute("DELETE FROM workers WHERE id = ?", (self.id,))

        with contextlib.suppress(Exception):  # the store may be gone; leases then just end
            await self.keel.engine.write(release)

    def _claim_in(self, tx: Tx, *, limit: int) -> list[Claim]:
        return claim_in(tx, self.keel.engine.dialect, self.id, limit, self.lease_s)

    def _reap_in(self, tx: Tx) -> list[str]:
        """Free at once the leases of workers on this host whose process is gone (a server
        restarted after a crash need not wait for their leases to end)."""
        host = socket.gethostname()
        dead = [
            str(worker_id)
            for worker_id, pid in tx.fetchall(
                "SELECT id, pid FROM workers WHERE host = ? AND id <> ?", (host, self.id)
            )
            if not _alive(int(pid))
        ]
        for worker_id in dead:
            tx.execute(
                "UPDATE run_queue SET worker_id = NULL, lease_until = 0 WHERE worker_id = ?",
                (worker_id,),
            )
            tx.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
        return dead

    def _register_in(self, tx: Tx) -> None:
        stamp = now_us()
        tx.execute(
            "INSERT INTO workers (id, host, pid, capacity, running, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, 0, ?, ?)",
            (self.id, socket.gethostname(), os.getpid(), self.capacity, stamp, stamp),
        )

    async def _renew(self) -> None:
        ids = [session_id for session_id in self._runs if session_id not in self._handing_back]

        def renew(tx: Tx) -> set[str]:
            tx.execute(
                "UPDATE workers SET heartbeat_at = ?, running = ? WHERE id = ?",
                (now_us(), len(ids), self.id),
            )
            return renew_in(tx, self.id, ids, self.lease_s)

        lost = await self.keel.engine.write(renew)
        for session_id in lost:
            task = self._runs.get(session_id)
            if task is not None:
                log.warning("worker %s lost the lease of %s; stopping its run", self.id, session_id)
                self.stats.lost += 1
                task.cancel()

    def _start(self, claim: Claim) -> None:
        self.stats.claimed += 1
        task = asyncio.get_running_loop().create_task(self._run_one(claim))
        self._runs[claim.session_id] = task

        def forget(_: asyncio.Task[None]) -> None:
            self._runs.pop(claim.session_id, None)
            self._handing_back.discard(claim.session_id)
            self._wake.set()  # a slot is free

        task.add_done_callback(forget)

    def _fence(self, session_id: str) -> Callable[[Tx], None]:
        def fence(tx: Tx) -> None:
            check_lease_in(tx, self.id, session_id)

        return fence

    async def _run_one(self, claim: Claim) -> None:
        session_id = claim.session_id
        engine = self.keel.engine
        if claim.claims > MAX_CLAIMS:
            await self._fail(session_id, f"its run crashed {MAX_CLAIMS} times; see the logs")
            return
        try:
            await engine.write(lambda tx: self._claimed_in(tx, claim))
            await self.keel.run(session_id, fence=self._fence(session_id))
        except LeaseLost:
            self.stats.lost += 1
            return
        except asyncio.CancelledError:
            if not self._stopping:  # lost the lease: the new holder owns the row now
                return
            raise
        except (SessionNotResumable, NotFound):
            pass  # it ended (or was deleted) elsewhere: nothing left to run
        except KeelError as error:
            await self._fail(session_id, str(error))
            return
        except Exception as error:
            log.exception("worker %s: the run of session %s crashed", self.id, session_id)
            self.stats.released += 1
            message = f"{type(error).__name__}: {error}"
            delay = BACKOFF_S * 2 ** (claim.claims - 1)
            self._handing_back.add(session_id)
            await engine.write(
                lambda tx: release_in(tx, self.id, session_id, delay_s=delay, error=message)
            )
            return
        self.stats.finished += 1
        self._handing_back.add(session_id)
        await engine.write(lambda tx: finish_in(tx, self.id, session_id))

    def _claimed_in(self, tx: Tx, claim: Claim) -> None:
        check_lease_in(tx, self.id, claim.session_id)
        payload = {"workerId": self.id, "claim": claim.claims}
        EventLog.append_in(
            tx,
            claim.session_id,
            self.keel.run_id,
            [NewEvent(kinds.SESSION_CLAIMED, "keel", payload)],
        )

    async def _fail(self, session_id: str, reason: str) -> None:
        """End the session as failed with `reason` and take it off the queue."""
        self.stats.failed += 1
        self._handing_back.add(session_id)
        run_id = self.keel.run_id

        def fail(tx: Tx) -> None:
            check_lease_in(tx, self.id, session_id)
            session = SessionRegistry.get_in(tx, session_id)
            if not session.status.is_final:
                SessionRegistry.transition_in(
                    tx, run_id, session_id, SessionStatus.FAILED, payload={"reason": reason}
                )
            finish_in(tx, self.id, session_id)

        with contextlib.suppress(LeaseLost, NotFound):
            await self.keel.engine.write(fail)
        self.keel.events.notify(session_id)
