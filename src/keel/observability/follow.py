"""Observing a session while it runs: its events, read from the log in a task of its own
about once a second, fed in order to sinks (the metrics, the tracer).

    async with observe_session(keel.events, session_id, metrics=metrics, tracer_provider=tp):
        await loop.run(session_id, flow)

On entering, observation starts after the log's last event (or `after_seq`): a session that
resumes in a new process is traced from the resume on, and what an earlier process did is
not traced again; the sinks are also given the session's first event (`session.created`:
its goal and agent versions). On leaving, the run has finished: the rest of the log is read
to its end, so nothing is lost to timing, and each sink is told the run is over.

Observation must never slow or break the run: it reads off the run's path and seldom, and a
sink that fails, or a read that fails, is logged and never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

from keel.events import EventLog, kinds
from keel.observability.metrics import KeelMetrics
from keel.types import TraceEvent

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

log = logging.getLogger(__name__)

PAGE = 500
INTERVAL_S = 1.0
"""How often a running session's new events are read: a read per commit (what
`EventLog.follow` does) costs a busy process a third of its throughput; sinks can wait."""


class EventSink(Protocol):
    """Something fed a session's events in order while it runs."""

    def observe(self, event: TraceEvent) -> None: ...

    def finish(self, session_id: str) -> None:
        """The run of `session_id` is over: nothing more comes from it."""
        ...


class _Guarded:
    """A sink whose failures are logged (the first with its traceback), never raised."""

    def __init__(self, sink: EventSink, session_id: str) -> None:
        self.sink = sink
        self.session_id = session_id
        self.failures = 0

    def _failed(self, doing: str) -> None:
        self.failures += 1
        if self.failures == 1:
            log.exception(
                "observing session %s: %s failed %s; later failures are counted, not logged",
                self.session_id,
                type(self.sink).__name__,
                doing,
            )

    def observe(self, event: TraceEvent) -> None:
        try:
            self.sink.observe(event)
        except Exception:
            self._failed(f"on event {event.seq} ({event.type})")

    def finish(self) -> None:
        try:
            self.sink.finish(self.session_id)
        except Exception:
            self._failed("at the end of the run")
        if self.failures > 1:
            log.warning(
                "observing session %s: %s failed %d times",
                self.session_id,
                type(self.sink).__name__,
                self.failures,
            )


class _Follower:
    def __init__(self, events: EventLog, session_id: str, sinks: list[_Guarded], after: int):
        self.events = events
        self.session_id = session_id
        self.sinks = sinks
        self.cursor = after
        self.headed = False
        self.task = asyncio.get_running_loop().create_task(self._follow())

    def feed(self, event: TraceEvent) -> None:
        self.cursor = event.seq
        for sink in self.sinks:
            sink.observe(event)

    async def _head(self) -> None:
        """Give the sinks the session's first event (its goal and agent versions) once."""
        if self.headed:
            return
        self.headed = True
        if self.cursor > 0:
            for event in await self.events.read(self.session_id, 0, limit=1):
                for sink in self.sinks:
                    sink.observe(event)

    async def _follow(self) -> None:
        try:
            await self._head()
            while True:
                batch = await self.events.read(self.session_id, self.cursor, limit=PAGE)
                for event in batch:
                    self.feed(event)
                    if event.type in kinds.SESSION_FINAL:
                        return
                if len(batch) < PAGE:
                    await asyncio.sleep(INTERVAL_S)
        except Exception:
            log.exception(
                "observing session %s: reading its events failed; the rest is read when the "
                "run ends",
                self.session_id,
            )

    async def stop(self) -> None:
        """Stop following, read what is left to the end of the log, end each sink."""
        self.task.cancel()
        try:
            await asyncio.gather(self.task, return_exceptions=True)
            await self._head()
            end = await self.events.last_seq(self.session_id)
            while self.cursor < end:
                batch = await self.events.read(self.session_id, self.cursor, limit=PAGE)
                if not batch:
                    break
                for event in batch:
                    self.feed(event)
        except Exception:
            log.exception("observing session %s: reading its last events failed", self.session_id)
        finally:
            for sink in self.sinks:
                sink.finish()


@contextlib.asynccontextmanager
async def observe_session(
    events: EventLog,
    session_id: str,
    after_seq: int | None = None,
    *,
    metrics: KeelMetrics | None = None,
    tracer_provider: TracerProvider | None = None,
    workflow: str | None = None,
    sinks: Sequence[EventSink] = (),
) -> AsyncIterator[None]:
    """Feed the session's events after `after_seq` (default: the last one now) to `metrics`,
    to a trace on `tracer_provider` (its root named for `workflow`), and to `sinks`, while
    the body runs; then drain the log and end them."""
    chosen: list[EventSink] = [*sinks]
    if metrics is not None:
        chosen.append(metrics)
    follower: _Follower | None = None
    try:
        if tracer_provider is not None:
            from keel.observability.tracing import SessionTracer

            chosen.append(SessionTracer(tracer_provider, session_id, workflow=workflow))
        if chosen:
            after = await events.last_seq(session_id) if after_seq is None else after_seq
            guarded = [_Guarded(sink, session_id) for sink in chosen]
            follower = _Follower(events, session_id, guarded, after)
    except Exception:
        log.exception("observing session %s: could not start; it runs unobserved", session_id)
    try:
        yield
    finally:
        if follower is not None:
            await follower.stop()
