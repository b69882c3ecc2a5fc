"""Chaos: sessions of a workflow with parallel sub-tasks, the process SIGKILLed at random
points again and again and resumed each time. Every session must end with the result an
uninterrupted run gives, with a gap-free event log, and no command with side effects may
have run twice. `make test` runs a short version; `make test-chaos` the long one."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

RUNNER = Path(__file__).parent / "chaos_runner.py"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _run(home: Path, sessions: int, workspace: Path, latency_ms: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(RUNNER), str(home), str(sessions), str(workspace), str(latency_ms)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(home / "keel.db", timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _count(home: Path) -> int:
    if not (home / "keel.db").exists():
        return 0
    try:
        return int(_rows(home, "SELECT COUNT(*) FROM events")[0][0])  # type: ignore[call-overload]
    except sqlite3.OperationalError:
        return 0


def chaos(tmp_path: Path, sessions: int, kills: int, seed: int, latency_ms: int = 150) -> None:
    rng = random.Random(seed)
    reference_home, home = tmp_path / "reference", tmp_path / "chaos"
    for folder in (tmp_path / "ref-ws", tmp_path / "ws"):
        folder.mkdir()
    reference = _run(reference_home, sessions, tmp_path / "ref-ws", 0)
    assert reference.wait(120) == 0
    expected = sorted(r[0] for r in _rows(reference_home, "SELECT final_answer FROM sessions"))

    killed = 0
    while killed < kills:
        before = _count(home)
        process = _run(home, sessions, tmp_path / "ws", latency_ms)
        started = time.monotonic()
        while _count(home) <= before and process.poll() is None:
            assert time.monotonic() - started < 30, "the runner made no progress"
            time.sleep(0.01)  # kill once it works, not while it starts up
        time.sleep(rng.uniform(0.05, 0.6))
        if process.poll() is not None:
            break  # everything finished before this kill
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed += 1
    final = _run(home, sessions, tmp_path / "ws", latency_ms)
    assert final.wait(120) == 0

    resumed = _rows(home, "SELECT COUNT(*) FROM events WHERE type = 'session.resumed'")
    assert killed == 0 or int(resumed[0][0]) > 0  # type: ignore[call-overload]
    assert killed >= min(kills, 1), "the runs ended before any kill; make them longer"
    statuses = _rows(home, "SELECT status, final_answer FROM sessions")
    assert {s for s, _ in statuses} == {"done"}
    assert sorted(str(a) for _, a in statuses) == expected
    for (session_id,) in _rows(home, "SELECT id FROM sessions"):
        seqs = [
            int(s)  # type: ignore[call-overload]
            for (s,) in _rows(
                home, f"SELECT seq FROM events WHERE session_id = '{session_id}' ORDER BY seq"
            )
        ]
        assert seqs == list(range(1, len(seqs) + 1)), f"a gap in {session_id}'s events"
    effects = Counter((tmp_path / "ws" / "effects.log").read_text().split())
    assert all(count == 1 for count in effects.values()), "a side effect ran twice"
    calls = _rows(
        home,
        "SELECT task_id, payload FROM events WHERE type = 'tool.call'",
    )
    ended = Counter(
        (task, json.loads(str(payload))["callId"])
        for task, payload in _rows(
            home, "SELECT task_id, payload FROM events WHERE type = 'tool.result'"
        )
    )
    assert len(ended) == len({(t, json.loads(str(p))["callId"]) for t, p in calls})
    assert set(ended.values()) == {1}


def test_a_short_chaos_run_loses_and_repeats_nothing(tmp_path: Path) -> None:
    chaos(tmp_path, sessions=4, kills=3, seed=7)


@pytest.mark.chaos
@pytest.mark.parametrize("seed", range(5))
def test_chaos(tmp_path: Path, seed: int) -> None:
    chaos(tmp_path, sessions=12, kills=8, seed=seed, latency_ms=400)
