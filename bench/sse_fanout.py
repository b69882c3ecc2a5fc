"""Session API under load: 500 SSE subscribers on one session stream, and session creation.

What is measured, on a fresh SQLite store (WAL, `synchronous=FULL`) in a temporary
KEEL_HOME, with the server and the subscribers in processes of their own:

* The server (`sse_server.py`) is the app `keel serve` serves (`create_app`, no embedded
  worker), run by uvicorn. A bench-only route starts a writer inside that process: it
  appends `--rate` events per second for `--seconds` to one session through
  `keel.events.append`, as an embedded worker appends its events. An append in the
  server's process wakes the session's stream at once; one from another process (a `keel
  worker` on the same SQLite file) is seen by the stream's poll, every 50 ms
  (`streaming.FOLLOW_POLL_S`), which would add up to 50 ms to each delivery.
* `--subscribers` clients (`sse_subscribers.py`) in `--client-processes` processes follow
  that session's SSE stream (`Accept: text/event-stream`, resuming with `Last-Event-ID`),
  all connected before the writer starts: httpx streaming clients, or with `--client raw`
  a minimal HTTP/1.1 reader on plain sockets, which needs far less CPU (what the server
  does when its clients keep up). Each event carries the wall clock time
  (`time.time_ns`, one clock for every process of the machine) taken just before its
  `append`; a client stamps each chunk it reads. Latency is append to delivery: the
  commit, the fan-out, the socket and the client's parse.
* Every subscriber must receive every event exactly once and in order; the report says
  how many did.
* Session creation: `--create-requests` POST /v1/sessions, `--create-concurrency` at a
  time from one client process; no worker runs them.

Two cores run all of it here, so the clients' CPU time competes with the server's; the
report gives the CPU seconds of the server and of the clients while events flowed.

Run: `.venv/bin/python bench/sse_fanout.py [--subscribers 500 --rate 1000 --seconds 10]
[--client raw]` (prints a table, then the report as one JSON line).
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
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import keel
from keel import Keel
from keel.cli.builtin_team import default_team
from keel.server.tokens import create_token
from sse_subscribers import BUCKET_US
from turn_clock import percentile


def _histogram_percentile(histogram: Counter[int], share: float) -> float:
    """The nearest-rank percentile of the histogram, in ms (bucket upper bound)."""
    total = sum(histogram.values())
    rank, seen = max(1, int(share * total + 0.999999)), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) * BUCKET_US / 1000
    return 0.0


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


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).parent / script), *args]
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
            "sse_subscribers.py",
            f"{url}/v1/sessions/{session_id}/events",
            token,
            str(after),
            str(total),
            str(share),
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
        "client": args.client,
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
        (
            "subscribers",
            f"{fan['subscribers']} {fan['client']} clients, {fan['client_processes']} process(es)",
        ),
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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keel-sse-bench-") as tmp:
        home = Path(tmp) / "home"
        token, session_id, after = asyncio.run(_seed(home))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = _spawn("sse_server.py", str(home), str(port))
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
