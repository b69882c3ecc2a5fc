"""Server-Sent Events for a session's event log: resumable, none missed, none twice.

Each SSE event's `id` is the event's sequence number, so a client that reconnects with
`Last-Event-ID` (or `?after=`) continues exactly where it stopped. The event table is the
source of truth: a subscriber first reads what it missed from the store, then takes live
events from its session's `Feed`.

One `Feed` per session with subscribers follows the log (woken at once by commits in this
process, by polling — or PostgreSQL notifications — for commits elsewhere), encodes each
new event once, and keeps the latest `FEED_LIMIT` frames. Subscribers read them from the
feed at their own pace and send all that is new in one write, so 500 subscribers cost one
read and one encoding per event, and one write per subscriber per wakeup, not per event.
A subscriber that falls further behind than the feed keeps catches up from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from keel.events import EventLog, kinds
from keel.types import TraceEvent

HEARTBEAT_S = 15.0
FEED_LIMIT = 4096
STORE_PAGE = 500
CLOSE_WAIT_S = 2.0
FOLLOW_POLL_S = 0.05


def sse_frame(event: TraceEvent) -> bytes:
    """The event as a JSON page shows it (nulls included), framed as one SSE event."""
    data = event.model_dump_json(by_alias=True)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


HEARTBEAT_FRAME = b": keep-alive\n\n"


class Feed:
    """The live events of one session, encoded once and shared by its subscribers."""

    def __init__(self, events: EventLog, session_id: str, after: int, keep: int) -> None:
        self._events = events
        self.session_id = session_id
        self._keep = keep
        self.subscribers = 0
        self.first_seq = after + 1
        """The sequence number of the oldest frame kept."""
        self.final_seq: int | None = None
        self.changed = asyncio.Event()
        """Set when frames are added; a subscriber clears it when it has read them all."""
        self._frames: list[bytes] = []
        self._task = asyncio.get_running_loop().create_task(self._follow(after))

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self._frames) - 1

    async def _follow(self, after: int) -> None:
        async for event in self._events.follow(self.session_id, after, poll_interval=FOLLOW_POLL_S):
            if event.seq != self.last_seq + 1:  # cannot happen in a gap-free log: start over
                self._frames, self.first_seq = [], event.seq
            self._frames.append(sse_frame(event))
            if event.type in kinds.SESSION_FINAL:
                self.final_seq = event.seq
            if len(self._frames) > self._keep:
                dropped = len(self._frames) // 2
                del self._frames[:dropped]
                self.first_seq += dropped
            self.changed.set()

    def frames_after(self, cursor: int) -> list[bytes] | None:
        """The frames after `cursor` (none yet: []); None when the feed no longer keeps
        all of them."""
        if cursor + 1 < self.first_seq:
            return None
        return self._frames[cursor + 1 - self.first_seq :]

    def stop(self) -> asyncio.Task[None]:
        """Stop following the log; returns the task to wait for."""
        self._task.cancel()
        return self._task


class Hub:
    """The feeds of the sessions that have subscribers in this server."""

    def __init__(self, events: EventLog, *, keep: int = FEED_LIMIT) -> None:
        self._events = events
        self._keep = keep
        """Frames each feed keeps; past that it drops the older half."""
        self._feeds: dict[str, Feed] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._opening = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        return sum(feed.subscribers for feed in self._feeds.values())

    async def _join(self, session_id: str) -> Feed:
        async with self._opening:
            feed = self._feeds.get(session_id)
            if feed is None:
                last = await self._events.last_seq(session_id)
                feed = self._feeds[session_id] = Feed(self._events, session_id, last, self._keep)
            feed.subscribers += 1
            return feed

    def _leave(self, feed: Feed) -> None:
        """The last subscriber stops the feed without waiting for it: a stream ends as soon
        as it has sent its last event."""
        feed.subscribers -= 1
        if not feed.subscribers and self._feeds.get(feed.session_id) is feed:
            del self._feeds[feed.session_id]
            stopping = feed.stop()
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every feed; wait for them a little (a follow that is slow to stop does not
        hold up a server's shutdown)."""
        feeds, self._feeds = list(self._feeds.values()), {}
        tasks = [feed.stop() for feed in feeds] + list(self._stopping)
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)

    async def _from_store(self, session_id: str, cursor: int) -> tuple[bytes, int, bool]:
        """A page of the events after `cursor` read from the store, as SSE frames: the
        frames, the new cursor, and whether the page ends with the session's final event."""
        frames: list[bytes] = []
        for event in await self._events.read(session_id, cursor, limit=STORE_PAGE):
            frames.append(sse_frame(event))
            cursor = event.seq
            if event.type in kinds.SESSION_FINAL:
                return b"".join(frames), cursor, True
        return b"".join(frames), cursor, False

    async def subscribe(
        self, session_id: str, after: int, *, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[bytes | None]:
        """The session's events after `after`, in order, as SSE frames (several at once
        when several are new), until its final event; None is a heartbeat (nothing new for
        `heartbeat_s`)."""
        feed = await self._join(session_id)
        cursor = after
        try:
            while True:
                frames = feed.frames_after(cursor)
                if frames is None:  # at the start, or after falling behind the feed
                    chunk, cursor, ended = await self._from_store(session_id, cursor)
                    if chunk:
                        yield chunk
                    if ended:
                        return
                    if chunk:
                        continue
                    frames = feed.frames_after(cursor) or []
                if frames:
                    final = feed.final_seq
                    if final is not None and cursor < final <= cursor + len(frames):
                        yield b"".join(frames[: final - cursor])
                        return
                    cursor += len(frames)
                    yield b"".join(frames)
                    continue
                feed.changed.clear()  # nothing new: wait until the feed has more
                try:
                    async with asyncio.timeout(heartbeat_s):  # no task per wait, as wait_for
                        await feed.changed.wait()
                except TimeoutError:
                    yield None
        finally:
            self._leave(feed)
