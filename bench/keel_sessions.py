"""Keel side of the concurrency benchmark: many durable sessions of tool-calling turns.

Each session is one agent (no planner, no reviewer) whose scripted model asks for one
`read_file` of a small file in a shared workspace per turn, for `turns` turns, then gives
its answer. Every model call and every tool call is a checkpointed step with its events,
on a SQLite file in WAL mode with `synchronous=FULL` (Keel's default; read back from the
engine's write connection and reported).

The sessions are created first, one after another, and that is timed on its own; then all
of them run at once in this process (`asyncio.gather` over `Keel.run`), and that is the
timed run. Turn latency: see `turn_clock.py`. Peak RSS is this process's, so run one side
per process (`concurrency.py` does).

Run: `python bench/keel_sessions.py --sessions 1000 --turns 10` (prints JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import keel
from keel import Keel
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import SessionStatus
from sqlite_files import synchronous_name
from turn_clock import TurnClock, peak_rss_mb, percentile

_SCRIPT = "bench-tool-turns"
NOTES = "notes.txt"
NOTES_TEXT = "".join(f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(20))


def _register_script(clock: TurnClock, turns: int) -> None:
    def script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        # The task's prompt names the session's goal, which is unique per session.
        clock.model_call(next(m.content for m in messages if m.role == "user"))
        done = sum(1 for message in messages if message.role == "assistant")
        if done >= turns:
            return "done"
        call = ToolCall(id=f"call-{done + 1}", name="read_file", arguments={"path": NOTES})
        return Message(role="assistant", tool_calls=[call])

    register_script(_SCRIPT, script)


def _agent(turns: int) -> dict[str, Any]:
    return {
        "name": "reader",
        "role": "worker",
        "model": f"scripted:{_SCRIPT}",
        "tools": ["read_file"],
        "permissions": [{"level": "L1", "scope": "file:read"}],
        # A task fails when a model call that asks for tools reaches maxTurns.
        "maxTurns": turns + 1,
    }


async def _run(home: Path, workspace: Path, sessions: int, turns: int) -> dict[str, Any]:
    clock = TurnClock()
    _register_script(clock, turns)
    agents = [_agent(turns)]
    # The agents only read a shared file: no worktree or snapshots, like the SDK side.
    config = {"workspace": str(workspace), "isolate": False}
    async with await Keel.open(home) as runtime:
        started = time.perf_counter()
        ids = [
            (await runtime.create_session(f"bench session {n}", agents, config=config)).id
            for n in range(sessions)
        ]
        create_s = time.perf_counter() - started
        rss_before_mb = peak_rss_mb()
        started = time.perf_counter()
        ended = await asyncio.gather(*(runtime.run(session_id) for session_id in ids))
        run_s = time.perf_counter() - started
        failed = [s.id for s in ended if s.status is not SessionStatus.DONE]
        if failed:
            raise RuntimeError(f"{len(failed)} sessions did not end done, e.g. {failed[0]}")
        results = await runtime.engine.read(
            lambda tx: tx.fetchone("SELECT COUNT(*) FROM events WHERE type = 'tool.result'")
        )
        row = await runtime.engine.write(lambda tx: tx.fetchone("PRAGMA synchronous"))
    if results is None or results[0] != sessions * turns:
        raise RuntimeError(f"expected {sessions * turns} tool results, found {results}")
    latencies = clock.latencies_ms(sessions, turns)
    return {
        "engine": "keel",
        "version": keel.__version__,
        "sessions": sessions,
        "turns": turns,
        "durable": True,
        "synchronous": synchronous_name(int(row[0])) if row else "?",
        "create_s": create_s,
        "run_s": run_s,
        "turns_per_s": sessions * turns / run_s,
        "p50_turn_ms": percentile(latencies, 0.50),
        "p99_turn_ms": percentile(latencies, 0.99),
        "mean_turn_ms": statistics.fmean(latencies),
        "peak_rss_before_run_mb": rss_before_mb,
        "peak_rss_mb": peak_rss_mb(),
        "db_bytes": (home / "keel.db").stat().st_size,
    }


def run_keel_sessions(sessions: int = 1000, turns: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="keel-sessions-") as tmp:
        root = Path(tmp)
        workspace = root / "workspace"
        workspace.mkdir()
        (workspace / NOTES).write_text(NOTES_TEXT, encoding="utf-8")
        return asyncio.run(_run(root / "home", workspace, sessions, turns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="sessions run at once")
    parser.add_argument("--turns", type=int, default=10, help="tool turns per session")
    args = parser.parse_args()
    print(json.dumps(run_keel_sessions(args.sessions, args.turns), indent=2))


if __name__ == "__main__":
    main()
