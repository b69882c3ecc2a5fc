"""`keel replay` draws a finished session's timeline; `keel export` writes its events as
JSON lines; an unknown session is one line and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.main import app

runner = CliRunner()


@pytest.fixture
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return {"KEEL_HOME": str(home), "COLUMNS": "200", "WORKSPACE": str(workspace)}


def keel(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def session(env: dict[str, str]) -> str:
    """A finished session of the built-in team."""
    code, _, _ = keel(
        env, "run", "Write the parser and test it", "--plain", "--workspace", env["WORKSPACE"]
    )
    assert code == 0
    _, out, _ = keel(env, "sessions", "--json")
    session_id: str = json.loads(out.splitlines()[0])["id"]
    return session_id


def test_replay_shows_the_timeline_with_offsets_actors_and_tasks_by_depth(
    env: dict[str, str], session: str
) -> None:
    code, out, _ = keel(env, "replay", session)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"session {session} · done · Write the parser and test it")
    first = next(line for line in lines if "session.created" in line)
    assert first.split()[:2] == ["+0.000s", "local"]
    planned = next(line for line in lines if "plan.created" in line)
    assert re.search(r"\+\d+\.\d{3}s\s+keel\s+1\s+plan\.created\s+\d+ tasks from planner", planned)
    call = next(line for line in lines if "model.call" in line and "tester" in line)
    assert re.search(r"tester\s+ {2}1\.\d\s+model\.call\s+tester scripted:tester: \d+ in", call)
    assert any("session.completed" in line for line in lines)
    footer = r"\d+ events · \d+ model calls · \d+ tool calls · 0 approvals · \d+ tokens · 4 tasks"
    assert re.match(footer, lines[-1])
    assert "model.delta" not in out
    _, everything, _ = keel(env, "replay", session, "--all")
    assert "model.delta" in everything


def test_export_writes_each_event_as_one_json_line(env: dict[str, str], session: str) -> None:
    code, out, _ = keel(env, "export", session, "--format", "jsonl")
    assert code == 0
    exported = [json.loads(line) for line in out.splitlines()]
    _, listed, _ = keel(env, "events", session, "--json")
    assert exported == [json.loads(line) for line in listed.splitlines()]
    assert [e["seq"] for e in exported] == list(range(1, len(exported) + 1))
    assert {"id", "seq", "runId", "sessionId", "actor", "type", "payload", "timestamp"} <= set(
        exported[0]
    )
    assert exported[-1]["type"] == "session.completed"


def test_export_to_a_file(env: dict[str, str], session: str, tmp_path: Path) -> None:
    target = tmp_path / "out" / "events.jsonl"
    target.parent.mkdir()
    code, out, _ = keel(env, "export", session, "--output", str(target))
    assert code == 0
    lines = target.read_text().splitlines()
    assert out.strip() == f"{len(lines)} events of session {session} written to {target}"
    assert json.loads(lines[0])["type"] == "session.created"
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind


@pytest.mark.parametrize("command", ["replay", "export"])
def test_an_unknown_session_is_one_line_and_exit_2(
    env: dict[str, str], command: str, tmp_path: Path
) -> None:
    target = tmp_path / "never.jsonl"
    args = [command, "s_nope"] + (["--output", str(target)] if command == "export" else [])
    code, out, err = keel(env, *args)
    assert code == 2
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: no session 's_nope'")
    assert not target.exists()


def test_an_unknown_format_or_folder_is_refused(
    env: dict[str, str], session: str, tmp_path: Path
) -> None:
    code, _, err = keel(env, "export", session, "--format", "csv")
    assert code == 2
    assert "'csv' is not 'jsonl'" in err or "invalid value" in err.lower()
    for target in (tmp_path / "missing" / "x.jsonl", tmp_path):
        code, _, err = keel(env, "export", session, "--output", str(target))
        assert code == 2
        assert err.strip() == f"error: cannot write {target}: " + (
            "No such file or directory" if target != tmp_path else "Is a directory"
        )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
