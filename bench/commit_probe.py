"""What one durable commit costs on this disk right now: the floor under both benchmarks.

A one-row transaction on a SQLite file in WAL mode with `synchronous=FULL` pays one fsync
of the WAL. On shared or virtual disks that cost moves by several times from one minute to
the next, so the benchmarks measure it in each round and report it beside their figures.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def commit_ms(commits: int = 200) -> float:
    """The median wall time of a one-row WAL + `synchronous=FULL` commit, in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="commit-probe-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "probe.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("CREATE TABLE probe (n INTEGER)")
            times: list[float] = []
            for n in range(commits):
                started = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO probe VALUES (?)", (n,))
                conn.execute("COMMIT")
                times.append(time.perf_counter() - started)
        finally:
            conn.close()
    return statistics.median(times) * 1000
