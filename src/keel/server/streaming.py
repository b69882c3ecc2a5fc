"""Server-Sent Events for a session's event log: resumable, none missed, none twice.

Each SSE event's `id` is the event's sequence number, so a client that reconnects with
`Last-Event-ID` (or `?after=`) continues exactly where it stopped. The event table is the
source of truth: a subscriber first reads what it missed from the store, then takes live
events from its session's `Feed`.

One `Feed` per session with subscribers follows the log (woken at once by commits in this
process, by polling — or PostgreSQL notifications — for commits elsewhere) and hands each
new event to every subscriber, so 500 subscribers cost one read per batch, not 500. A
subscriber that falls too far behind drops its queue and catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from keel.events import EventLog, kinds
from keel.types import TraceEvent

HEARTBEAT_S = 15.0
QUEUE_LIMIT = 2000
FOLLOW_POLL_S = 0.05


@dataclass(eq=False, slots=True)
class _Subscriber:
    queue: asyncio.Queue[TraceEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Feed:
    """The live events of one session, shared by its subscribers."""

    def __init__(self, events: EventLog, session_id: str, after: int) -> None:
        self._events = events
        self.session_id = session_id
        self.subscribers: set[_Subscriber] = set()
        self._task = asyncio.get_running_loop().create_task(self._follow(after))

    async def _follow(self, after: int) -> None:
        async for event in self._events.follow(self.session_id, after, poll_interval=FOLLOW_POLL_S):
            for subscriber in self.subscribers:
                if subscriber.overflowed:
                    continue
                try:
                    subscriber.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscriber.overflowed = True
                subscriber.wake.set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Hub:
    """The feeds of the sessions that have subscribers in this server."""

    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._feeds: dict[str, Feed] = {}
        self._opening = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    async def _join(self, session_id: str) -> _Subscriber:
        async with self._opening:
            feed = self._feeds.get(session_id)
            if feed is None:
                last = await self._events.last_seq(session_id)
                feed = self._feeds[session_id] = Feed(self._events, session_id, last)
            subscriber = _Subscriber()
            feed.subscribers.add(subscriber)
            return subscriber

    async def _leave(self, session_id: str, subscriber: _Subscriber) -> None:
        feed = self._feeds.get(session_id)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            del self._feeds[session_id]
            await feed.close()

    async def close(self) -> None:
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.close()

    async def subscribe(
        self, session_id: str, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[TraceEvent | None]:
        """The session's events after `after`, in order, until its final event; None is a
        heartbeat (nothing new for `heartbeat_s`)."""
        subscriber = await self._join(session_id)
        cursor = after
        catch_up = True  # from the store: at the start, and after falling behind
        try:
            while True:
                if catch_up or subscriber.overflowed:
                    catch_up = subscriber.overflowed = False
                    while not subscriber.queue.empty():
                        subscriber.queue.get_nowait()
                    while True:
                        batch = await self._events.read(session_id, cursor, limit=500)
                        for event in batch:
                            cursor = event.seq
                            yield event
                            if event.type in kinds.SESSION_FINAL:
                                return
                        if len(batch) < 500:
                            break
                subscriber.wake.clear()
                while not subscriber.queue.empty():
                    event = subscriber.queue.get_nowait()
                    if event.seq <= cursor:
                        continue
                    if event.seq != cursor + 1:  # a gap can only mean we fell behind
                        catch_up = True
                        break
                    cursor = event.seq
                    yield event
                    if event.type in kinds.SESSION_FINAL:
                        return
                if catch_up or subscriber.overflowed or not subscriber.queue.empty():
                    continue
                try:
                    await asyncio.wait_for(subscriber.wake.wait(), heartbeat_s)
                except TimeoutError:
                    yield None
        finally:
            await self._leave(session_id, subscriber)


def sse_frame(event: TraceEvent) -> bytes:
    data = json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


HEARTBEAT_FRAME = b": keep-alive\n\n"
