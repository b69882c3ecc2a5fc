"""Blackboard facts: writes and reads per second on SQLite (WAL, synchronous=FULL).

What is measured, on a fresh SQLite store in a temporary KEEL_HOME (the settings are read
back from the engine and reported):

* `write_sequential`: one awaited `FactStore.write` after another, each its own
  transaction with its `fact.written` event, committed durably before the next starts, as
  an agent's tool calls do. Keys cycle over `--keys`, so most writes are new versions.
* `write_concurrent`: `--writers` coroutines writing at once; each write is still its own
  transaction with its event, and the engine commits the writes that queue together in
  one fsync (group commit).
* `write_batched`: `--batch` writes in one `engine.write` through `FactStore.write_in`, as
  code that stores many facts at once would.
* `read_point`: one awaited `FactStore.read` of a key after another.
* `list_visible`: `FactStore.visible` for a `project` agent that sees `--keys` session
  facts and as many project facts, so each listing returns 2 x `--keys` facts.

Each figure is the median of `--rounds` rounds, each on a new store after a warm-up.

Run: `.venv/bin/python bench/blackboard_facts.py` (add `--json` for the raw report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import keel
from keel import Keel
from keel.blackboard import Actor, FactStore
from keel.store import Tx
from keel.types import MemoryScope

_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _value(i: int) -> dict[str, Any]:
    return {"step": i, "status": "green", "files": ["src/app.py", "tests/test_app.py"]}


async def _rate(count: int, run: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await run()
    return count / (time.perf_counter() - started)


async def _round(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    async with await Keel.open(home) as runtime:
        facts = FactStore(runtime.engine, events=runtime.events)
        session = await runtime.start_flow("bench")
        agent = Actor("coder", session.id, runtime.run_id, MemoryScope.PROJECT, project="bench")
        keys = [f"bench/key-{i}" for i in range(args.keys)]
        rates: dict[str, Any] = {}

        async def sequential() -> None:
            for i in range(args.writes):
                await facts.write(agent, keys[i % args.keys], _value(i))

        async def concurrent() -> None:
            per_writer = args.writes // args.writers

            async def writer(w: int) -> None:
                for i in range(per_writer):
                    await facts.write(agent, keys[(w * per_writer + i) % args.keys], _value(i))

            await asyncio.gather(*(writer(w) for w in range(args.writers)))

        def batch_of(start: int) -> Callable[[Tx], None]:
            def work(tx: Tx) -> None:
                for i in range(start, start + args.batch):
                    facts.write_in(tx, agent, keys[i % args.keys], _value(i))

            return work

        async def batched() -> None:
            for start in range(0, args.writes, args.batch):
                await runtime.engine.write(batch_of(start))

        rates["write_sequential"] = await _rate(args.writes, sequential)
        rates["write_concurrent"] = await _rate(
            args.writes // args.writers * args.writers, concurrent
        )
        rates["write_batched"] = await _rate(args.writes // args.batch * args.batch, batched)

        for key in keys:  # the project facts that the listing also returns
            await runtime.engine.write(
                lambda tx, key=key: facts.write_in(tx, agent, key, _value(0), scope="project")
            )
        picks = [random.choice(keys) for _ in range(args.reads)]

        async def point_reads() -> None:
            for key in picks:
                await facts.read(agent, key, scope="session")

        async def listings() -> None:
            for _ in range(args.listings):
                seen = await facts.visible(agent)
                if len(seen) != 2 * args.keys:
                    raise RuntimeError(f"listed {len(seen)} facts, expected {2 * args.keys}")

        rates["read_point"] = await _rate(args.reads, point_reads)
        rates["list_visible"] = await _rate(args.listings, listings)
        row = await runtime.engine.write(lambda tx: tx.fetchone("PRAGMA synchronous"))
        rates["synchronous"] = _SYNCHRONOUS[int(row[0])] if row else "?"
        journal = await runtime.engine.read(lambda tx: tx.fetchone("PRAGMA journal_mode"))
        rates["journal_mode"] = str(journal[0]) if journal else "?"
        return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--listings", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the raw report as JSON")
    args = parser.parse_args()

    warmup = argparse.Namespace(**{**vars(args), "writes": 200, "reads": 200, "listings": 10})
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        asyncio.run(_round(Path(tmp), warmup))
    rounds: list[dict[str, Any]] = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
            rounds.append(asyncio.run(_round(Path(tmp), args)))
        shown = ", ".join(
            f"{name} {value:.0f}/s"
            for name, value in rounds[-1].items()
            if isinstance(value, float)
        )
        print(f"round {number + 1}/{args.rounds}: {shown}", file=sys.stderr)

    measures = [name for name, value in rounds[0].items() if isinstance(value, float)]
    report = {
        "work": (
            f"{args.writes} writes over {args.keys} keys ({args.writers} concurrent writers, "
            f"batches of {args.batch}), {args.reads} point reads, {args.listings} listings of "
            f"{2 * args.keys} visible facts; median of {args.rounds} rounds"
        ),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, keel {keel.__version__}",
        "journal_mode": rounds[0]["journal_mode"],
        "synchronous": rounds[0]["synchronous"],
        "per_second": {
            name: round(statistics.median(r[name] for r in rounds), 1) for name in measures
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['work']}\n{report['machine']}")
    print(f"journal_mode={report['journal_mode']} synchronous={report['synchronous']}")
    for name, rate in report["per_second"].items():
        unit = "listings/s" if name == "list_visible" else "ops/s"
        print(f"  {name:<18} {rate:>10,.0f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
