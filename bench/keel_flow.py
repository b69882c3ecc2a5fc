"""Keel side of the durable-orchestration benchmark.

The same work as `langgraph_flow.py`: a linear chain of `nodes` no-op steps, run `flows`
times, each flow a new session, with a durable checkpoint per node on a SQLite file in WAL
mode with `synchronous=FULL` (read back and reported). Keel also writes two events per
node (`workflow.node.enter`, `workflow.node.exit`) in the same transaction as the
checkpoint; they are counted in the bytes.

Timed: the `run_flow` calls of the measured flows only. One warm-up flow runs first on a
throwaway database. `bytes_per_step` is the measured database's size after
`PRAGMA wal_checkpoint(TRUNCATE)` divided by `nodes * flows`.

Run: `python bench/keel_flow.py --nodes 200 --flows 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import keel
from keel import FunctionFlow, Keel
from keel.types import JsonObject
from sqlite_files import read_pragmas, stored_bytes, synchronous_name


async def _noop(data: JsonObject) -> JsonObject | None:
    return None


async def _run_flows(home: Path, nodes: int, flows: int) -> tuple[float, str]:
    flow = FunctionFlow([_noop] * nodes, {"goal": "benchmark"})
    elapsed = 0.0
    async with await Keel.open(home) as runtime:
        for index in range(flows):
            session = await runtime.start_flow(f"bench-{index}")
            started = time.perf_counter()
            state = await runtime.run_flow(session.id, flow)
            elapsed += time.perf_counter() - started
            if state.index != nodes:
                raise RuntimeError(f"flow {index} stopped at step {state.index} of {nodes}")
        # Read the setting back from the engine's own write connection.
        row = await runtime.engine.write(lambda tx: tx.fetchone("PRAGMA synchronous"))
    return elapsed, synchronous_name(int(row[0])) if row else "?"


def run_keel(home: Path, nodes: int = 200, flows: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as warmup:
        asyncio.run(_run_flows(Path(warmup), nodes, 1))
    seconds, synchronous = asyncio.run(_run_flows(home, nodes, flows))
    db_path = home / "keel.db"
    conn = sqlite3.connect(db_path)
    try:
        journal_mode, _ = read_pragmas(conn)
        size = stored_bytes(conn, db_path)
    finally:
        conn.close()
    steps = nodes * flows
    return {
        "engine": "keel",
        "version": keel.__version__,
        "steps": steps,
        "seconds": round(seconds, 4),
        "steps_per_s": round(steps / seconds, 1),
        "bytes_per_step": round(size / steps, 1),
        "journal_mode": journal_mode,
        "synchronous": synchronous,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--flows", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        print(json.dumps(run_keel(Path(home), args.nodes, args.flows), indent=2))


if __name__ == "__main__":
    main()
