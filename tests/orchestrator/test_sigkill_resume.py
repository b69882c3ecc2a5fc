"""Real processes killed with SIGKILL at several points, then resumed in a new process:
no finished node runs again, and the event log has no gap and no duplicate."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

KEEL = [sys.executable, "-m", "keel.cli"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "KEEL_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _query(home: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    db = home / "keel.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        conn.close()


def _deny_pending(home: Path) -> None:
    """A command or an edit that a kill interrupted waits for a person: deny each, as a
    careful person would without looking (the agent is told it did not run)."""
    for (approval,) in _query(home, "SELECT id FROM approvals WHERE status = 'pending'"):
        subprocess.run(
            [*KEEL, "approve", str(approval), "--deny"],
            env=_env(home),
            capture_output=True,
            check=False,
        )


def _wait_for_events(
    home: Path, count: int, process: subprocess.Popen[bytes], stderr: Path | None = None
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _deny_pending(home)
        rows = _query(home, "SELECT COUNT(*) FROM events")
        if rows and int(rows[0][0]) >= count:  # type: ignore[call-overload]
            return
        if process.poll() is not None:
            said = stderr.read_text() if stderr is not None and stderr.exists() else ""
            pytest.fail(f"the run ended before {count} events (exit {process.returncode}): {said}")
        time.sleep(0.005)
    pytest.fail(f"no {count} events within 30 s")


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL


def _assert_whole_log(home: Path, session_id: str) -> list[tuple[str, str]]:
    """Check the log is gap-free and enters each node once; return (type, payload) pairs,
    with the task id folded into each payload as `taskId`."""
    rows = _query(
        home,
        "SELECT seq, type, payload, task_id FROM events WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "a gap in the event log"
    nodes = [
        (str(r[1]), str(r[2]))
        for r in rows
        if r[1] in ("workflow.node.enter", "workflow.node.exit")
    ]
    entered = Counter(p for t, p in nodes if t == "workflow.node.enter")
    assert all(n == 1 for n in entered.values()), "a node was entered twice"
    return [(str(r[1]), json.dumps({**json.loads(str(r[2])), "taskId": r[3]})) for r in rows]


@pytest.mark.parametrize("kill_after_events", [[6], [20], [40], [6, 8, 12]])
def test_keel_demo_killed_at_several_points_resumes_to_the_same_end(
    tmp_path: Path, kill_after_events: list[int]
) -> None:
    home = tmp_path / "home"
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as sink:
        run = subprocess.Popen(
            [*KEEL, "demo", "--plain", "--scripted-delay", "60"],
            env=_env(home),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    _wait_for_events(home, kill_after_events[0], run, errors)
    _kill(run)
    (session_id,) = (str(r[0]) for r in _query(home, "SELECT id FROM sessions"))

    for count in kill_after_events[1:]:
        base = int(_query(home, "SELECT COUNT(*) FROM events")[0][0])  # type: ignore[call-overload]
        with errors.open("wb") as sink:
            again = subprocess.Popen(
                [*KEEL, "resume", session_id, "--plain"],
                env=_env(home),
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        _wait_for_events(home, base + count, again, errors)
        _kill(again)

    done = subprocess.Popen(
        [*KEEL, "resume", session_id, "--plain"],
        env=_env(home),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while done.poll() is None and time.monotonic() < deadline:
        _deny_pending(home)
        time.sleep(0.05)
    assert done.wait(5) == 0
    events = _assert_whole_log(home, session_id)
    types = [t for t, _ in events]
    ends = [t for t in types if t.startswith("session.") and t not in ("session.resumed",)]
    assert ends[-1] == "session.completed"
    assert types[-1] in ("session.completed", "artifact.stored")  # the final patch follows
    assert types.count("session.resumed") == len(kill_after_events)
    entered = [json.loads(p) for t, p in events if t == "workflow.node.enter"]
    calling = [n for n in entered if n["kind"] in ("model", "plan")]
    assert types.count("model.call") == len(calling), "a model call was paid twice"

    def call_key(payload: str) -> tuple[str, str]:
        data = json.loads(payload)
        return data["taskId"], data["callId"]

    asked = Counter(call_key(p) for t, p in events if t == "tool.call")
    ended = Counter(call_key(p) for t, p in events if t == "tool.result")
    assert set(ended.values()) == {1}, "a tool call finished twice"
    assert set(ended) == set(asked), "a tool call was lost"
    statuses = _query(home, "SELECT status FROM tasks WHERE session_id = ?", (session_id,))
    assert {s for (s,) in statuses} == {"done"}
    assert len(statuses) == 5


FLOW_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from keel import FunctionFlow, Keel

    ledger = sys.argv[2]

    def make(index):
        async def step(data):
            with open(ledger, "a") as f:
                f.write(f"{index}\\n")
            return {"total": data.get("total", 0) + index}
        step.__name__ = f"step{index}"
        return step

    async def main():
        async with await Keel.open(os.environ["KEEL_HOME"]) as keel:
            if sys.argv[1] == "start":
                session = await keel.start_flow("sums")
                print(session.id, flush=True)
            else:
                session = await keel.sessions.get(sys.argv[1])
            state = await keel.run_flow(session.id, FunctionFlow([make(i) for i in range(400)]))
            print("total", state.data["total"], flush=True)

    asyncio.run(main())
    """
)


def test_a_function_flow_killed_mid_commit_loses_and_repeats_nothing(tmp_path: Path) -> None:
    home, script, ledger = tmp_path / "home", tmp_path / "flow.py", tmp_path / "ledger"
    script.write_text(FLOW_SCRIPT)
    env = _env(home)
    first = subprocess.Popen(
        [sys.executable, str(script), "start", str(ledger)], env=env, stdout=subprocess.PIPE
    )
    assert first.stdout is not None
    session_id = first.stdout.readline().decode().strip()
    process = first
    for lines in (40, 150, 300):
        deadline = time.monotonic() + 30
        while not ledger.exists() or len(ledger.read_text().split()) < lines:
            assert process.poll() is None, "the flow ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        _kill(process)
        process = subprocess.Popen(
            [sys.executable, str(script), session_id, str(ledger)], env=env, stdout=subprocess.PIPE
        )
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert out.decode().strip().splitlines()[-1] == f"total {sum(range(400))}"
    runs = Counter(int(line) for line in ledger.read_text().split())
    assert set(runs) == set(range(400))
    assert sum(runs.values()) - 400 <= 3, "a finished step ran again"
    _assert_whole_log(home, session_id)
