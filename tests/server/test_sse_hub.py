"""The SSE hub on a real store: a subscriber gets every event after its cursor once and in
order, from the store and then live, until the session's final event; one that falls
further behind than its session's feed keeps catches up from the store; idle streams get
heartbeats; the feed ends with its last subscriber."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from keel import Keel
from keel.events import NewEvent, kinds
from keel.server.streaming import Hub

_IDS = re.compile(rb"^id: (\d+)$", re.MULTILINE)


async def _append(keel: Keel, session_id: str, count: int, kind: str = "bench.tick") -> None:
    events = [NewEvent(kind, "test", {"n": n}) for n in range(count)]
    await keel.events.append(session_id, keel.run_id, events)


def _ids(chunk: bytes | None) -> list[int]:
    return [int(found) for found in _IDS.findall(chunk or b"")]


async def _until_final(stream: AsyncIterator[bytes | None]) -> list[int]:
    return [seq async for chunk in stream for seq in _ids(chunk)]


async def test_a_subscriber_gets_the_stored_events_then_the_live_ones_until_the_final_one(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session("Stream", team)
    await _append(keel, session.id, 5)
    last = await keel.events.last_seq(session.id)
    hub = Hub(keel.events)
    stream = hub.subscribe(session.id, 2)

    first = await anext(stream)
    await _append(keel, session.id, 3)
    await _append(keel, session.id, 1, kinds.SESSION_COMPLETED)
    await _append(keel, session.id, 2)  # after the final event: not streamed
    rest = await asyncio.wait_for(_until_final(stream), 10)

    assert _ids(first) + rest == list(range(3, last + 5))
    assert hub.subscribers == 0
    await hub.close()


async def test_a_subscriber_that_falls_behind_the_feed_catches_up_from_the_store(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session("Stream", team)
    hub = Hub(keel.events, keep=4)
    slow = hub.subscribe(session.id, 0)
    first = _ids(await anext(slow))
    feed = hub._feeds[session.id]  # read only: to know the feed has dropped frames

    for _ in range(30):
        await _append(keel, session.id, 2)
    async with asyncio.timeout(10):
        while feed.last_seq < first[-1] + 60:
            feed.changed.clear()
            await feed.changed.wait()
    assert feed.first_seq > first[-1] + 1  # what the slow subscriber needs is gone
    await _append(keel, session.id, 1, kinds.SESSION_CANCELLED)
    rest = await asyncio.wait_for(_until_final(slow), 10)

    assert first + rest == list(range(1, first[-1] + 62))
    await hub.close()


async def test_many_subscribers_share_one_feed_and_an_idle_stream_gets_heartbeats(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session("Stream", team)
    last = await keel.events.last_seq(session.id)
    hub = Hub(keel.events)
    streams = [hub.subscribe(session.id, last, heartbeat_s=0.05) for _ in range(20)]

    beats = await asyncio.gather(*(anext(stream) for stream in streams))
    assert beats == [None] * 20
    assert hub.subscribers == 20
    await _append(keel, session.id, 3)
    chunks = await asyncio.gather(*(anext(stream) for stream in streams))
    assert all(_ids(chunk) == [last + 1, last + 2, last + 3] for chunk in chunks)

    for stream in streams:
        await stream.aclose()
    assert hub.subscribers == 0
    assert not hub._feeds  # the last subscriber stopped the feed
    await hub.close()
