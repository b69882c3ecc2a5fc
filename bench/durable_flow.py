"""Durable orchestration, side by side: Keel and LangGraph on the same work in one run.

The work: a linear flow of `--nodes` no-op nodes with a durable checkpoint per node, on a
SQLite file in WAL mode with `synchronous=FULL` for both (each side reads the settings
back and reports them). Each round runs both sides, alternating which goes first; the
report gives each side's median over the rounds and the ratios.

Targets (issue 2): Keel >= 5x LangGraph's steps per second, and <= 1 KB stored per step.

Run: `make bench` (installs the `bench` extra), or
`python bench/durable_flow.py --nodes 200 --flows 5 --rounds 5`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from keel_flow import run_keel
from langgraph_flow import run_langgraph

TARGET_RATIO = 5.0
TARGET_BYTES = 1024


def _median(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(result[key] for result in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--flows", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    keel_runs: list[dict[str, Any]] = []
    langgraph_runs: list[dict[str, Any]] = []
    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
            root = Path(tmp)
            keel_first = round_no % 2 == 0
            for side in ("keel", "langgraph") if keel_first else ("langgraph", "keel"):
                if side == "keel":
                    keel_runs.append(run_keel(root / "keel", args.nodes, args.flows))
                else:
                    langgraph_runs.append(
                        run_langgraph(root / "langgraph.sqlite", args.nodes, args.flows)
                    )
        print(
            f"round {round_no + 1}/{args.rounds}: "
            f"keel {keel_runs[-1]['steps_per_s']:.0f} steps/s, "
            f"langgraph {langgraph_runs[-1]['steps_per_s']:.0f} steps/s",
            file=sys.stderr,
        )

    keel_rate = _median(keel_runs, "steps_per_s")
    graph_rate = _median(langgraph_runs, "steps_per_s")
    keel_bytes = _median(keel_runs, "bytes_per_step")
    graph_bytes = _median(langgraph_runs, "bytes_per_step")
    ratio = keel_rate / graph_rate
    report = {
        "work": f"{args.nodes}-node linear no-op flow x {args.flows} flows, {args.rounds} rounds",
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}",
        "keel": {
            "version": keel_runs[0]["version"],
            "steps_per_s": round(keel_rate, 1),
            "bytes_per_step": round(keel_bytes, 1),
            "journal_mode": keel_runs[0]["journal_mode"],
            "synchronous": keel_runs[0]["synchronous"],
        },
        "langgraph": {
            "version": langgraph_runs[0]["version"],
            "steps_per_s": round(graph_rate, 1),
            "bytes_per_step": round(graph_bytes, 1),
            "journal_mode": langgraph_runs[0]["journal_mode"],
            "synchronous": langgraph_runs[0]["synchronous"],
        },
        "ratio_steps_per_s": round(ratio, 2),
        "ratio_bytes_per_step": round(graph_bytes / keel_bytes, 1),
        "targets": {
            f"steps/s >= {TARGET_RATIO}x langgraph": ratio >= TARGET_RATIO,
            f"bytes/step <= {TARGET_BYTES}": keel_bytes <= TARGET_BYTES,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
