"""Session API under load: 500 SSE subscribers on one session stream, and session creation.

What is measured, on a fresh SQLite store (WAL, `synchronous=FULL`) in a temporary
KEEL_HOME, with the server, the writer and the subscribers in separate processes:

* The server is the app `keel serve` serves (`create_app`, no embedded worker), run by
  uvicorn in a process of its own. It also carries a bench-only route that starts a
  *writer* inside that process: it appends `--rate` events per second for `--seconds` to
  one session through `keel.events.append`, as an embedded worker appends its events
  (each `append` is one committed transaction; the events due at each ~1 ms tick are
  appended together). An append in the server's process wakes the session's stream at
  once; one from another process (a `keel worker` on the same SQLite file) would be seen
  by the stream's poll, every 50 ms (`FOLLOW_POLL_S`), which would add up to 50 ms.
* `--subscribers` httpx streaming clients, spread over `--client-processes` processes,
  follow that session's SSE stream (`Accept: text/event-stream`, resuming with
  `Last-Event-ID`), all connected before the writer starts. Each event carries the wall
  clock time (`time.time_ns`, the same clock in every process of the machine) taken just
  before its `append`; a client stamps each chunk it reads, and latency is append to
  delivery: the commit, the fan-out, the socket and the client's parse.
* Every subscriber must receive every event exactly once and in order; the report says
  how many did.
* Session creation: `--create-requests` POST /v1/sessions from `--create-concurrency`
  concurrent requests of one client process; nothing runs them (no worker).

Two cores run all of it here, so the clients' own CPU time competes with the server's;
the report gives each process's CPU seconds.

Run: `.venv/bin/python bench/sse_fanout.py [--subscribers 500 --rate 1000 --seconds 10]`
(prints a table, then the report as one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import keel
from keel import Keel
from keel.cli.builtin_team import default_team
from keel.events import NewEvent
from keel.server import ServerOptions, create_app
from keel.server.state import ServerState
from keel.server.tokens import create_token
from turn_clock import percentile

BUCKET_US = 100
"""Latency histogram resolution: 0.1 ms."""
TICK_S = 0.001
_SENT = b'"sentNs":'


# -- the server process ----------------------------------------------------------------


class Writer:
    """Appends `rate` events per second to one session, inside the server's process."""

    def __init__(self) -> None:
        self.appended = 0
        self.elapsed_s = 0.0
        self.commit_ms: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self, state: ServerState, session_id: str, rate: float, total: int) -> None:
        events, run_id = state.keel.events, state.keel.run_id
        start = time.perf_counter()
        while self.appended < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1) - self.appended
            if due > 0:
                sent = time.time_ns()
                batch = [
                    NewEvent("bench.tick", "bench", {"n": self.appended + i, "sentNs": sent})
                    for i in range(due)
                ]
                await events.append(session_id, run_id, batch)
                self.commit_ms.append((time.time_ns() - sent) / 1e6)
                self.appended += due
            await asyncio.sleep(TICK_S)
        self.elapsed_s = time.perf_counter() - start


def serve(home: Path, port: int) -> None:
    import uvicorn

    app = create_app(lambda: Keel.open(home), ServerOptions(workspace_root=home, workers=0))
    writer = Writer()

    @app.post("/bench/write", include_in_schema=False)
    async def write(session_id: str, rate: float, total: int) -> dict[str, int]:
        state: ServerState = app.state.keel
        writer.task = asyncio.create_task(writer.run(state, session_id, rate, total))
        return {"total": total}

    @app.get("/bench/write", include_in_schema=False)
    async def written() -> dict[str, Any]:
        if writer.task is not None and writer.task.done():
            writer.task.result()
        commits = writer.commit_ms
        return {
            "appended": writer.appended,
            "elapsed_s": writer.elapsed_s,
            "commits": len(commits),
            "commit_p50_ms": percentile(commits, 0.5) if commits else 0.0,
            "commit_p99_ms": percentile(commits, 0.99) if commits else 0.0,
        }

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the client processes --------------------------------------------------------------


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


async def _clients(
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


# -- the bench ---------------------------------------------------------------------------


def _histogram_percentile(histogram: Counter[int], share: float) -> float:
    """The nearest-rank percentile of the histogram, in ms (bucket upper bound)."""
    total = sum(histogram.values())
    rank, seen = max(1, int(share * total + 0.999999)), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) * BUCKET_US / 1000
    return 0.0


def _own_cpu_s() -> float:
    usage = os.times()
    return usage.user + usage.system


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _seed(home: Path) -> tuple[str, str, int]:
    """An admin token and the session whose stream the subscribers follow."""
    async with await Keel.open(home) as runtime:
        team = await runtime.agents.register(default_team())
        _, token = await create_token(runtime.engine, "local", admin=True)
        session = await runtime.create_session("Stream events to 500 clients", team)
        return token, session.id, await runtime.events.last_seq(session.id)


def _spawn(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _wait_ready(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server was not ready within 60 s")


def _fan_out(
    args: argparse.Namespace,
    url: str,
    token: str,
    session_id: str,
    after: int,
    server: subprocess.Popen[str],
) -> dict[str, Any]:
    total = round(args.rate * args.seconds)
    shares = [
        len(range(n, args.subscribers, args.client_processes)) for n in range(args.client_processes)
    ]
    clients = [
        _spawn(
            "--role",
            "clients",
            "--url",
            f"{url}/v1/sessions/{session_id}/events",
            "--token",
            token,
            "--after",
            str(after),
            "--total",
            str(total),
            "--count",
            str(share),
            "--client",
            args.client,
        )
        for share in shares
    ]
    for client in clients:
        assert client.stdout is not None
        if client.stdout.readline().strip() != "connected":
            raise RuntimeError("a client process failed to connect its subscribers")
    server_cpu = _cpu_s(server.pid)
    started_ns = time.time_ns()
    httpx.post(
        f"{url}/bench/write", params={"session_id": session_id, "rate": args.rate, "total": total}
    ).raise_for_status()
    reports = []
    try:
        for client in clients:
            out, _ = client.communicate(timeout=args.seconds + 120)
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.communicate()
    server_cpu = _cpu_s(server.pid) - server_cpu
    writer = httpx.get(f"{url}/bench/write").json()
    histogram: Counter[int] = Counter()
    for report in reports:
        histogram.update({int(k): v for k, v in report["histogram"].items()})
    received = sum(r["received"] for r in reports)
    last_ns = max(r["last_ns"] for r in reports)
    return {
        "subscribers": args.subscribers,
        "client_processes": args.client_processes,
        "events": total,
        "appended_per_s": round(writer["appended"] / writer["elapsed_s"], 1),
        "commits": writer["commits"],
        "commit_p50_ms": round(writer["commit_p50_ms"], 2),
        "commit_p99_ms": round(writer["commit_p99_ms"], 2),
        "delivered": received,
        "delivered_per_s": round(received / ((last_ns - started_ns) / 1e9), 1),
        "complete_subscribers": sum(r["complete"] for r in reports),
        "latency_p50_ms": _histogram_percentile(histogram, 0.50),
        "latency_p99_ms": _histogram_percentile(histogram, 0.99),
        "latency_max_ms": _histogram_percentile(histogram, 1.0),
        "server_cpu_s": round(server_cpu, 1),
        "clients_cpu_s": round(sum(r["cpu_s"] for r in reports), 1),
        "errors": [e for r in reports for e in r["errors"]][:3],
    }


async def _creations(url: str, token: str, requests: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    body = {"goal": "Fix the failing test"}
    next_request = iter(range(requests))

    async def one_by_one(client: httpx.AsyncClient) -> None:
        for _ in next_request:
            sent = time.perf_counter()
            response = await client.post("/v1/sessions", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"POST /v1/sessions answered {response.status_code}")
            latencies.append((time.perf_counter() - sent) * 1000)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        await client.post("/v1/sessions", json=body)  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(one_by_one(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": requests,
        "concurrency": concurrency,
        "per_s": round(requests / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


def _table(report: dict[str, Any]) -> str:
    fan, create = report["fanout"], report["create_sessions"]
    rows = [
        ("subscribers (client processes)", f"{fan['subscribers']} ({fan['client_processes']})"),
        ("events appended", f"{fan['events']:,} in {fan['commits']:,} commits"),
        ("appended events/s", f"{fan['appended_per_s']:,.0f}"),
        ("commit p50 / p99", f"{fan['commit_p50_ms']} / {fan['commit_p99_ms']} ms"),
        ("delivered events/s (all subscribers)", f"{fan['delivered_per_s']:,.0f}"),
        ("subscribers with every event, in order", f"{fan['complete_subscribers']}"),
        ("append -> delivery p50", f"{fan['latency_p50_ms']} ms"),
        ("append -> delivery p99", f"{fan['latency_p99_ms']} ms"),
        ("append -> delivery max", f"{fan['latency_max_ms']} ms"),
        ("CPU s: server / clients", f"{fan['server_cpu_s']} / {fan['clients_cpu_s']}"),
        ("session creation", f"{create['per_s']:,.0f} req/s ({create['concurrency']} at once)"),
        ("creation latency p50 / p99", f"{create['p50_ms']} / {create['p99_ms']} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [report["work"], report["machine"]]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1000, help="events appended per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="httpx streaming clients, or a minimal HTTP/1.1 reader on plain sockets "
        "(much less client CPU: what the server can do when the clients keep up)",
    )
    parser.add_argument("--create-requests", type=int, default=2000)
    parser.add_argument("--create-concurrency", type=int, default=16)
    parser.add_argument(
        "--role", choices=["bench", "server", "clients"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--after", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "server":
        serve(args.home, args.port)
        return 0
    if args.role == "clients":
        report = asyncio.run(
            _clients(args.url, args.token, args.after, args.total, args.count, args.client)
        )
        print(json.dumps(report), flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="keel-sse-bench-") as tmp:
        home = Path(tmp) / "home"
        token, session_id, after = asyncio.run(_seed(home))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = _spawn("--role", "server", "--home", str(home), "--port", str(port))
        try:
            _wait_ready(url, server)
            fanout = _fan_out(args, url, token, session_id, after, server)
            create = asyncio.run(
                _creations(url, token, args.create_requests, args.create_concurrency)
            )
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)
        with sqlite3.connect(home / "keel.db") as conn:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    report = {
        "work": f"{args.subscribers} SSE subscribers on one session, {args.rate:g} events/s "
        f"for {args.seconds:g} s appended in the server's process; "
        f"{args.create_requests} session creations",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version} ({journal}), "
        f"keel {keel.__version__}",
        "fanout": fanout,
        "create_sessions": create,
    }
    print(_table(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
