"""Scale-out on PostgreSQL: sessions/s and node steps/s with 1, 2 and 4 `keel worker`
processes, beside what the same database does with `pgbench` in the same run.

The sessions: the scripted team without tools or workspace (a planner that splits the goal
into three tasks, two workers that do them, a reviewer; about 5 durable node steps, 50
events per session), so what is measured is the runtime and the store, not git or
subprocesses. For each worker count, on a fresh schema (dropped at the end): the sessions
are created, the `keel worker` processes (`--capacity` each) are started and registered,
then every session is queued in one transaction and the clock runs from that commit to the
last session's final event (both read from the event log's timestamps). Node steps are
the `workflow.node.exit` events.

The raw limit, measured right after each Keel run with as many pgbench clients as workers
(`-T` seconds each, in a scratch schema of the same database):

* `insert`: one INSERT of an event-sized row per transaction (a Keel step is one such
  commit, with a few more rows and reads);
* `insert+notify`: the same with `pg_notify` inside the transaction: PostgreSQL serialises
  the commits of notifying transactions, which is why Keel sends its notifications after
  the commit, batched, instead (see `src/keel/store/postgres_signals.py`);
* `simple-update`: pgbench's built-in `-N` (after `pgbench -i -s 1`), for reference.

Run: `.venv/bin/python bench/pg_workers.py [--sessions 200] [--workers 1 2 4]
[--dsn postgresql://postgres@127.0.0.1:5432/test]` (needs `pgbench`: Debian's
postgresql-contrib or postgresql-client). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from keel import Keel
from keel.events import kinds
from keel.orchestrator import run_queue
from keel.store import Tx

DEFAULT_DSN = os.environ.get("KEEL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
KEEL = [sys.executable, "-m", "keel.cli"]
TEAM = [
    {"name": "planner", "role": "planner", "model": "scripted:planner"},
    {"name": "builder", "role": "worker", "model": "scripted:worker"},
    {"name": "tester", "role": "worker", "model": "scripted:worker"},
    {"name": "reviewer", "role": "reviewer", "model": "scripted:reviewer"},
]
FINAL = sorted({kinds.SESSION_COMPLETED, kinds.SESSION_FAILED, kinds.SESSION_CANCELLED})
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 600.0

INSERT = (
    "INSERT INTO bench_events (session_id, type, payload, ts) "
    "VALUES ('s' || :client_id, 'workflow.node.exit', repeat('x', 200), 0);\n"
)
SCRIPTS = {
    "insert": f"BEGIN;\n{INSERT}END;\n",
    "insert+notify": f"BEGIN;\n{INSERT}SELECT pg_notify('bench', 's' || :client_id);\nEND;\n",
}


def _url(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def _drop(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- Keel ------------------------------------------------------------------------------


def _queue_all(run_id: str, ids: list[str]) -> Any:
    def work(tx: Tx) -> None:
        for session_id in ids:
            run_queue.enqueue_in(tx, run_id, session_id)

    return work


async def _registered(keel: Keel) -> int:
    row = await keel.engine.read(lambda tx: tx.fetchone("SELECT COUNT(*) FROM workers"))
    return int(row[0]) if row else 0


async def _finished(keel: Keel) -> int:
    marks = ", ".join("?" for _ in FINAL)
    row = await keel.engine.read(
        lambda tx: tx.fetchone(f"SELECT COUNT(*) FROM events WHERE type IN ({marks})", FINAL)
    )
    return int(row[0]) if row else 0


async def _window(keel: Keel) -> tuple[float, int, int]:
    """Seconds from the queueing commit to the last final event; node steps; sessions done."""
    marks = ", ".join("?" for _ in FINAL)

    row = await keel.engine.read(
        lambda tx: tx.fetchone(
            "SELECT MIN(CASE WHEN type = ? THEN ts END), "
            f"MAX(CASE WHEN type IN ({marks}) THEN ts END), "
            "SUM(CASE WHEN type = ? THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN type = ? THEN 1 ELSE 0 END) FROM events",
            (kinds.SESSION_QUEUED, *FINAL, kinds.NODE_EXIT, kinds.SESSION_COMPLETED),
        )
    )
    if row is None:
        raise RuntimeError("the event log is empty")
    queued, ended, steps, done = row
    return (int(ended) - int(queued)) / 1_000_000, int(steps), int(done)


async def _keel_run(
    dsn: str, workers: int, sessions: int, capacity: int, root: Path
) -> dict[str, Any]:
    schema = f"keel_bench_{uuid.uuid4().hex[:10]}"
    url = _url(dsn, schema)
    home = root / f"home-{workers}"
    home.mkdir()
    env = {**os.environ, "KEEL_HOME": str(home), "KEEL_DATABASE_URL": url}
    processes: list[asyncio.subprocess.Process] = []
    log = (root / f"workers-{workers}.log").open("ab")
    try:
        async with await Keel.open(home, database_url=url) as keel:
            ids = [(await keel.create_session(f"Goal {n}", TEAM)).id for n in range(sessions)]
            command = [*KEEL, "worker", "--capacity", str(capacity), "--log-level", "warning"]
            for _ in range(workers):
                processes.append(
                    await asyncio.create_subprocess_exec(*command, env=env, stdout=log, stderr=log)
                )
            deadline = time.monotonic() + START_TIMEOUT_S
            while await _registered(keel) < workers:
                exited = any(p.returncode is not None for p in processes)
                if time.monotonic() > deadline or exited:
                    raise RuntimeError(f"the workers did not start; see {log.name}")
                await asyncio.sleep(0.05)
            await keel.engine.write(_queue_all(keel.run_id, ids))
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while await _finished(keel) < sessions:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sessions did not finish; see {log.name}")
                await asyncio.sleep(0.1)
            seconds, steps, done = await _window(keel)
        if done != sessions:
            raise RuntimeError(f"only {done} of {sessions} sessions ended done")
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
        log.close()
        _drop(dsn, schema)
    return {
        "workers": workers,
        "capacity": capacity,
        "seconds": seconds,
        "sessions_per_s": sessions / seconds,
        "steps": steps,
        "steps_per_s": steps / seconds,
    }


# -- pgbench ---------------------------------------------------------------------------


def _pgbench(dsn: str, schema: str, args: list[str]) -> str:
    env = {**os.environ, "PGOPTIONS": f"-c search_path={schema}"}
    done = subprocess.run(
        ["pgbench", *args, dsn], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def _tps(output: str) -> float:
    found = re.search(r"^tps = ([\d.]+)", output, flags=re.M)
    if found is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{output}")
    return float(found[1])


def _raw_limits(dsn: str, clients: int, seconds: int, root: Path) -> dict[str, float]:
    schema = f"keel_bench_pgbench_{uuid.uuid4().hex[:8]}"
    threads = str(min(clients, os.cpu_count() or 1))
    run = ["-n", "-c", str(clients), "-j", threads, "-T", str(seconds)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.bench_events (id bigserial PRIMARY KEY, session_id text, "
                "type text, payload text, ts bigint)"
            ).format(sql.Identifier(schema))
        )
    try:
        limits: dict[str, float] = {}
        for name, script in SCRIPTS.items():
            path = root / f"{name}.sql"
            path.write_text(script)
            limits[name] = _tps(_pgbench(dsn, schema, [*run, "-f", str(path)]))
        _pgbench(dsn, schema, ["-i", "-s", "1", "-q"])
        limits["simple-update"] = _tps(_pgbench(dsn, schema, [*run, "-N"]))
        return limits
    finally:
        _drop(dsn, schema)


# -- the report ------------------------------------------------------------------------


def _server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("pgbench") is None:
        raise SystemExit(
            "pgbench is not installed: apt-get install postgresql-contrib (or postgresql-client)"
        )
    rows = []
    with tempfile.TemporaryDirectory(prefix="keel-pg-workers-") as tmp:
        root = Path(tmp)
        for workers in args.workers:
            row = await _keel_run(args.dsn, workers, args.sessions, args.capacity, root)
            row["pgbench_tps"] = await asyncio.to_thread(
                _raw_limits, args.dsn, workers, args.pgbench_seconds, root
            )
            rows.append(row)
            print(f"  {workers} worker(s): {row['sessions_per_s']:.1f} sessions/s", file=sys.stderr)
    return {
        "bench": "pg_workers",
        "sessions": args.sessions,
        "postgres": _server_version(args.dsn),
        "cpus": os.cpu_count(),
        "results": rows,
    }


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['sessions']} sessions per run, PostgreSQL {report['postgres']}, "
        f"{report['cpus']} CPUs",
        "",
        "| workers | seconds | sessions/s | node steps/s | pgbench insert TPS "
        "| insert+notify TPS | simple-update TPS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        tps = row["pgbench_tps"]
        lines.append(
            f"| {row['workers']} | {row['seconds']:.2f} | {row['sessions_per_s']:.1f} "
            f"| {row['steps_per_s']:.0f} | {tps['insert']:.0f} | {tps['insert+notify']:.0f} "
            f"| {tps['simple-update']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--capacity", type=int, default=8, help="sessions per worker at once")
    parser.add_argument("--pgbench-seconds", type=int, default=5, help="pgbench -T")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL database to use")
    args = parser.parse_args()
    report = asyncio.run(_main(args))
    print(_table(report))
    print(json.dumps(report, separators=(",", ":")))


if __name__ == "__main__":
    main()
