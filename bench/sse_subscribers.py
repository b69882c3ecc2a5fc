"""The subscriber side of `sse_fanout.py`: `count` subscribers of one session's SSE stream in
this process, with httpx streaming clients or a minimal HTTP/1.1 reader on plain sockets.

Each checks that its events come in order, none missed and none twice, and counts their
latencies (read time minus the `sentNs` the writer put in each event) in a histogram of
0.1 ms buckets. It prints "connected" once every subscriber is connected, then, when all
are done, its report as one JSON line.

Run by `sse_fanout.py`: `python bench/sse_subscribers.py URL TOKEN AFTER TOTAL COUNT KIND`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

BUCKET_US = 100
"""Latency histogram resolution: 0.1 ms."""
_SENT = b'"sentNs":'


def _count_latencies(frames: bytes, now: int, histogram: Counter[int]) -> None:
    """Add each event's latency: the events of one append share their time, so each time
    is parsed once and its events counted (`bytes` scans run at C speed)."""
    at = frames.find(_SENT)
    while at >= 0:
        end = frames.index(b"}", at)
        stamp = frames[at:end]
        histogram[(now - int(stamp[len(_SENT) :])) // 1000 // BUCKET_US] += frames.count(stamp)
        at = frames.find(_SENT, frames.rfind(stamp) + len(stamp))


class Subscriber:
    """One subscriber's view of the stream: checks that the events come in order, none
    missed and none twice, and counts their latencies."""

    def __init__(self, after: int, total: int, histogram: Counter[int]) -> None:
        self.expected, self.total, self.histogram = after + 1, total, histogram
        self.received = self.first_ns = self.last_ns = 0
        self._buffer = b""

    @property
    def done(self) -> bool:
        return self.received >= self.total

    def take(self, data: bytes, now: int) -> None:
        """Take stream bytes read at `now` (time.time_ns)."""
        buffer = self._buffer + data
        end = buffer.rfind(b"\n\n") + 2
        if end < 2:
            self._buffer = buffer  # no whole frame yet
            return
        frames, self._buffer = buffer[:end], buffer[end:]
        count = frames.count(b"id: ")
        if not count:
            return  # the retry hint, heartbeats
        head, tail = frames.find(b"id: "), frames.rfind(b"id: ")
        first_id = int(frames[head + 4 : frames.index(b"\n", head)])
        last_id = int(frames[tail + 4 : frames.index(b"\n", tail)])
        if first_id != self.expected or last_id != self.expected + count - 1:
            raise RuntimeError(f"expected events from {self.expected}, got {first_id}..{last_id}")
        self.expected += count
        self.received += count
        _count_latencies(frames, now, self.histogram)
        self.first_ns = self.first_ns or now
        self.last_ns = now


async def _httpx_stream(
    client: httpx.AsyncClient, url: str, subscriber: Subscriber, connected: Callable[[], None]
) -> None:
    headers = {"Accept": "text/event-stream", "Last-Event-ID": str(subscriber.expected - 1)}
    async with client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        connected()
        async for chunk in response.aiter_raw():
            subscriber.take(chunk, time.time_ns())
            if subscriber.done:
                return


async def _raw_stream(
    url: str, token: str, subscriber: Subscriber, connected: Callable[[], None]
) -> None:
    """The same request over a plain socket, with a minimal HTTP/1.1 chunked reader."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\nLast-Event-ID: {subscriber.expected - 1}\r\n\r\n"
    )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
        raise RuntimeError(f"unexpected answer: {head[:200]!r}")
    connected()
    buffer = b""
    try:
        while not subscriber.done:
            data = await reader.read(1 << 16)
            if not data:
                raise RuntimeError("the server closed the stream")
            now = time.time_ns()
            buffer += data
            body: list[bytes] = []
            while (line := buffer.find(b"\r\n")) >= 0:
                size = int(buffer[:line], 16)
                if len(buffer) < line + size + 4:
                    break
                body.append(buffer[line + 2 : line + 2 + size])
                buffer = buffer[line + size + 4 :]
            subscriber.take(b"".join(body), now)
    finally:
        writer.close()


async def run_subscribers(
    url: str, token: str, after: int, total: int, count: int, kind: str
) -> dict[str, Any]:
    histogram: Counter[int] = Counter()
    subscribers = [Subscriber(after, total, histogram) for _ in range(count)]
    ready, connected = asyncio.Event(), [0]

    def one_more() -> None:
        connected[0] += 1
        if connected[0] == count:
            ready.set()

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:
        runs = [
            asyncio.create_task(
                _httpx_stream(client, url, subscriber, one_more)
                if kind == "httpx"
                else _raw_stream(url, token, subscriber, one_more)
            )
            for subscriber in subscribers
        ]
        await asyncio.wait_for(ready.wait(), 120)
        print("connected", flush=True)
        cpu_s = _own_cpu_s()
        results = await asyncio.gather(*runs, return_exceptions=True)
        cpu_s = _own_cpu_s() - cpu_s
    return {
        "histogram": {str(k): v for k, v in histogram.items()},
        "complete": sum(1 for s in subscribers if s.received == total),
        "received": sum(s.received for s in subscribers),
        "first_ns": min((s.first_ns for s in subscribers if s.first_ns), default=0),
        "last_ns": max(s.last_ns for s in subscribers),
        "errors": [repr(r) for r in results if isinstance(r, BaseException)][:3],
        "cpu_s": cpu_s,
    }


def _own_cpu_s() -> float:
    usage = os.times()
    return usage.user + usage.system


if __name__ == "__main__":
    url, token, after, total, count, kind = sys.argv[1:7]
    report = asyncio.run(run_subscribers(url, token, int(after), int(total), int(count), kind))
    print(json.dumps(report), flush=True)
