"""Keel side of the fan-out benchmark: a plan of parallel no-op sub-tasks, durable.

Each fan-out run is one team session: a scripted planner answers with `tasks` sub-tasks
that all have `dependsOn: []`, the router gives each to the one worker agent, whose scripted
model answers at once without tools; there is no reviewer. The run loop starts up to the
session's `maxConcurrency` worker nodes at a time. Everything is durable on a SQLite file
in WAL mode with `synchronous=FULL` (Keel's default; read back from the engine's write
connection and reported).

What Keel persists for each sub-task: with the plan, a `tasks` row and its `task.created`
and `route.decided` events; for its one model node, in the node's checkpoint transaction,
`workflow.node.enter`, `task.status` (running), `context.assembled`, `model.call`,
`agent.message`, `task.status` (done, the row updated) and `workflow.node.exit` (the
checkpoint: it carries the node's result); and, in a transaction of its own, a
`model.delta` with the streamed answer. `persisted_per_subtask` counts them from the
database, so it stays true when Keel changes what it writes.

Timed: the `Keel.run` calls only (sessions are created up front; their creation is timed
separately). One warm-up run goes first on a throwaway database. `bytes_per_subtask` is
the growth of the database over the measured runs (main file plus what remains of the WAL
after `PRAGMA wal_checkpoint(TRUNCATE)`, measured before the sessions are created and
after the last run) divided by `tasks * runs`.

Run: `python bench/keel_fanout.py --tasks 100 --concurrency 100 --runs 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keel
from keel import Keel
from keel.models import Message, ToolSpec, register_script
from keel.types import SessionStatus
from sqlite_files import stored_bytes_at, synchronous_name

_PLANNER_SCRIPT = "bench-fanout-planner"
_WORKER_SCRIPT = "bench-fanout-worker"


class FanOutFailed(RuntimeError):
    """Keel could not run the fan-out as asked (for example, a plan larger than it accepts)."""


def _plan(tasks: int) -> str:
    plan = {
        "tasks": [{"goal": f"no-op {i}", "role": "worker", "dependsOn": []} for i in range(tasks)]
    }
    return json.dumps(plan)


def _agents() -> list[dict[str, Any]]:
    return [
        {"name": "planner", "role": "planner", "model": f"scripted:{_PLANNER_SCRIPT}"},
        {"name": "worker", "role": "worker", "model": f"scripted:{_WORKER_SCRIPT}"},
    ]


def _register_scripts(tasks: int) -> None:
    plan = _plan(tasks)

    def planner(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
        return plan

    def worker(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
        return "ok"

    register_script(_PLANNER_SCRIPT, planner)
    register_script(_WORKER_SCRIPT, worker)


def _persisted(db_path: Path, session_ids: list[str], subtasks: int) -> dict[str, float]:
    """Rows written for the measured sessions, per sub-task, by table and event type."""
    marks = ", ".join("?" * len(session_ids))
    conn = sqlite3.connect(db_path)
    try:
        counts: dict[str, float] = {}
        rows = conn.execute(
            f"SELECT type, COUNT(*) FROM events WHERE session_id IN ({marks}) GROUP BY type",
            session_ids,
        ).fetchall()
        for kind, count in sorted(rows):
            counts[f"event {kind}"] = round(count / subtasks, 2)
        counts["events (all)"] = round(sum(count for _, count in rows) / subtasks, 2)
        (tasks,) = conn.execute(
            f"SELECT COUNT(*) FROM tasks WHERE session_id IN ({marks})", session_ids
        ).fetchone()
        counts["tasks rows"] = round(tasks / subtasks, 2)
        (payload,) = conn.execute(
            f"SELECT SUM(LENGTH(payload)) FROM events WHERE session_id IN ({marks})", session_ids
        ).fetchone()
        counts["event payload bytes"] = round(payload / subtasks, 1)
    finally:
        conn.close()
    return counts


async def _fan_out(
    home: Path, workspace: Path, tasks: int, concurrency: int, runs: int
) -> dict[str, Any]:
    config = {"workspace": str(workspace), "maxConcurrency": concurrency}
    async with await Keel.open(home) as runtime:
        # The agents are registered (and the schema created) before the size baseline.
        await runtime.agents.register(_agents())
        before = stored_bytes_at(home / "keel.db")
        started = time.perf_counter()
        sessions = [
            await runtime.create_session(
                f"fan out {tasks} no-op sub-tasks", _agents(), config=config
            )
            for _ in range(runs)
        ]
        create_s = time.perf_counter() - started
        seconds: list[float] = []
        for session in sessions:
            started = time.perf_counter()
            ended = await runtime.run(session.id)
            seconds.append(time.perf_counter() - started)
            if ended.status is not SessionStatus.DONE:
                events = await runtime.events.read(ended.id)
                reason = events[-1].payload.get("reason", "no reason given") if events else "?"
                raise FanOutFailed(
                    f"Keel's fan-out session {ended.id} ended {ended.status.value}: {reason}"
                )
        row = await runtime.engine.write(lambda tx: tx.fetchone("PRAGMA synchronous"))
        done = await runtime.engine.read(
            lambda tx: tx.fetchone(
                "SELECT COUNT(*) FROM tasks WHERE status = 'done' AND parent_id IS NOT NULL"
            )
        )
    if done is None or done[0] != tasks * runs:
        raise RuntimeError(f"expected {tasks * runs} finished sub-tasks, found {done}")
    return {
        "seconds": seconds,
        "create_s": create_s,
        "before": before,
        "session_ids": [session.id for session in sessions],
        "synchronous": synchronous_name(int(row[0])) if row else "?",
    }


def run_keel_fanout(
    root: Path, tasks: int = 100, concurrency: int = 100, runs: int = 5
) -> dict[str, Any]:
    """Time `runs` fan-out sessions of `tasks` sub-tasks under `root` (a fresh directory)."""
    _register_scripts(tasks)
    workspace = root / "workspace"
    workspace.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="keel-fanout-warmup-") as warmup:
        asyncio.run(_fan_out(Path(warmup), workspace, tasks, concurrency, 1))
    home = root / "home"
    measured = asyncio.run(_fan_out(home, workspace, tasks, concurrency, runs))
    db_path = home / "keel.db"
    size = stored_bytes_at(db_path) - measured["before"]
    conn = sqlite3.connect(db_path)
    try:
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    subtasks = tasks * runs
    seconds = measured["seconds"]
    per_run = sum(seconds) / len(seconds)
    return {
        "engine": "keel",
        "version": keel.__version__,
        "tasks": tasks,
        "max_concurrency": concurrency,
        "runs": runs,
        "seconds_per_run": per_run,
        "subtasks_per_s": tasks / per_run,
        "create_ms_per_session": measured["create_s"] / runs * 1000,
        "bytes_per_subtask": size / subtasks,
        "persisted_per_subtask": _persisted(db_path, measured["session_ids"], subtasks),
        "journal_mode": journal_mode,
        "synchronous": measured["synchronous"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="sub-tasks in the plan")
    parser.add_argument("--concurrency", type=int, default=100, help="session maxConcurrency")
    parser.add_argument("--runs", type=int, default=5, help="timed fan-out runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-fanout-") as tmp:
        result = run_keel_fanout(Path(tmp), args.tasks, args.concurrency, args.runs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
