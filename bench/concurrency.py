"""Concurrent sessions, side by side: Keel (durable) and the OpenAI Agents SDK (in memory).

The work (orchestrator issue): `--sessions` sessions run at once in one process, each
`--turns` scripted turns of one model call and one read-only tool call (`read_file` of a
small file), then a final answer. Keel runs them as durable team sessions with one agent
on a scripted model (`keel_sessions.py`); the Agents SDK runs `Runner.run` with a fake
`Model` and a `function_tool` doing the same read, tracing off, nothing persisted
(`agents_sdk_sessions.py`). Each side runs in its own subprocess, so its peak RSS is its
own. A turn's latency runs from its model call's start to the next model call's start
(`turn_clock.py`).

Each round runs both sides, alternating which goes first, and measures what one durable
commit costs on the disk at that moment (`commit_probe.py`); the report gives each side's
median over the rounds, the ratio of the turn rates and the target.

Target (orchestrator issue): Keel, durable, >= 10x the Agents SDK's turns per second.

Run: `make bench`, or `python bench/concurrency.py --sessions 1000 --turns 10 --rounds 3`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from commit_probe import commit_ms

TARGET_RATIO = 10.0
BENCH = Path(__file__).parent
SIDES = {"keel": BENCH / "keel_sessions.py", "openai-agents": BENCH / "agents_sdk_sessions.py"}
_REPORTED = ("turns_per_s", "p50_turn_ms", "p99_turn_ms", "peak_rss_mb", "peak_rss_before_run_mb")


def _run_side(script: Path, sessions: int, turns: int) -> dict[str, Any]:
    command = [sys.executable, str(script), "--sessions", str(sessions), "--turns", str(turns)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: {script.name} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"version": results[0]["version"], "durable": results[0]["durable"]}
    for key in _REPORTED:
        summary[key] = round(statistics.median(r[key] for r in results), 1)
    if "synchronous" in results[0]:
        summary["synchronous"] = results[0]["synchronous"]
        create_s = statistics.median(r["create_s"] for r in results)
        summary["create_sessions_s (not timed)"] = round(create_s, 2)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="sessions run at once")
    parser.add_argument("--turns", type=int, default=10, help="tool turns per session")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    names = list(SIDES)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    probes: list[float] = []
    for round_no in range(args.rounds):
        probes.append(commit_ms())
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(_run_side(SIDES[name], args.sessions, args.turns))
        rates = ", ".join(f"{n} {results[n][-1]['turns_per_s']:.0f} turns/s" for n in names)
        print(
            f"round {round_no + 1}/{args.rounds}: {rates} (one commit {probes[-1]:.2f} ms)",
            file=sys.stderr,
        )

    keel, sdk = _summary(results["keel"]), _summary(results["openai-agents"])
    ratio = keel["turns_per_s"] / sdk["turns_per_s"]
    per_round = [
        round(k["turns_per_s"] / s["turns_per_s"], 2)
        for k, s in zip(results["keel"], results["openai-agents"], strict=True)
    ]
    report = {
        "work": f"{args.sessions} concurrent sessions x {args.turns} tool turns, "
        f"{args.rounds} rounds, one process per side",
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}",
        "one_commit_ms (WAL, synchronous=FULL)": round(statistics.median(probes), 2),
        "keel": keel,
        "openai-agents": sdk,
        "ratio_turns_per_s": round(ratio, 2),
        "ratio_turns_per_s_by_round": per_round,
        "targets": {f"keel turns/s >= {TARGET_RATIO:g}x openai-agents": ratio >= TARGET_RATIO},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
