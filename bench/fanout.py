"""Durable fan-out, side by side: Keel and LangGraph on the same work in one run.

The work (orchestrator issue): a plan of `--tasks` parallel no-op sub-tasks, durable. Keel
runs a team session whose planner returns that many tasks with `dependsOn: []` for one
worker agent (`keel_fanout.py`), once per `--concurrency` value (session `maxConcurrency`;
the first is the headline); LangGraph fans out with `Send` to as many no-op worker
invocations and joins them, checkpointed by `SqliteSaver` with `durability="sync"`
(`langgraph_fanout.py`). Both use a SQLite file in WAL mode with `synchronous=FULL`, read
back and reported. Each module's docstring says what it persists per sub-task; the report
counts it from the databases.

Each round runs every side (`--runs` fan-outs each, after a warm-up), rotating which goes
first; the report gives each side's median over the rounds of its mean wall time per
fan-out, sub-tasks per second, bytes stored per sub-task, and the ratios to LangGraph.

Run: `make bench`, or `python bench/fanout.py --tasks 100 --runs 10 --rounds 7`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from keel_fanout import FanOutFailed, run_keel_fanout
from langgraph_fanout import run_langgraph_fanout

LANGGRAPH = "langgraph"


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = statistics.median(result["seconds_per_run"] for result in results)
    first = results[0]
    summary: dict[str, Any] = {
        "version": first["version"],
        "ms_per_fanout": round(seconds * 1000, 1),
        "subtasks_per_s": round(first["tasks"] / seconds, 1),
        "bytes_per_subtask": round(statistics.median(r["bytes_per_subtask"] for r in results)),
        "persisted_per_subtask": first["persisted_per_subtask"],
        "journal_mode": first["journal_mode"],
        "synchronous": first["synchronous"],
    }
    if "create_ms_per_session" in first:
        create_ms = statistics.median(r["create_ms_per_session"] for r in results)
        summary["session_create_ms (not timed)"] = round(create_ms, 2)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="sub-tasks per fan-out")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[100, 16],
        help="Keel's maxConcurrency values (the first is the headline)",
    )
    parser.add_argument("--runs", type=int, default=10, help="timed fan-outs per side per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    def keel_side(concurrency: int) -> Callable[[Path], dict[str, Any]]:
        return lambda root: run_keel_fanout(root, args.tasks, concurrency, args.runs)

    sides: dict[str, Callable[[Path], dict[str, Any]]] = {
        f"keel maxConcurrency={c}": keel_side(c) for c in args.concurrency
    }
    sides[LANGGRAPH] = lambda root: run_langgraph_fanout(
        root / "langgraph.sqlite", args.tasks, args.runs
    )
    names = list(sides)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        shift = round_no % len(names)
        with tempfile.TemporaryDirectory(prefix="fanout-bench-") as tmp:
            for index, name in enumerate(names[shift:] + names[:shift]):
                root = Path(tmp) / f"side-{index}"
                root.mkdir()
                try:
                    results[name].append(sides[name](root))
                except FanOutFailed as error:
                    print(f"error: {error}", file=sys.stderr)
                    return 2
        rates = ", ".join(f"{n} {results[n][-1]['subtasks_per_s']:.0f}/s" for n in names)
        print(f"round {round_no + 1}/{args.rounds}: {rates}", file=sys.stderr)

    summaries = {name: _summary(results[name]) for name in names}
    graph = summaries[LANGGRAPH]
    ratios = {
        f"{name} / langgraph": {
            "subtasks_per_s": round(summary["subtasks_per_s"] / graph["subtasks_per_s"], 2),
            "bytes_per_subtask": round(
                summary["bytes_per_subtask"] / graph["bytes_per_subtask"], 2
            ),
        }
        for name, summary in summaries.items()
        if name != LANGGRAPH
    }
    report = {
        "work": f"fan-out of {args.tasks} parallel no-op sub-tasks, {args.runs} per side per "
        f"round, {args.rounds} rounds",
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}",
        **summaries,
        "ratios": ratios,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
