"""`keel snapshots`, `keel diff` and `keel rollback` on a real session whose workspace is a
worktree of a real repository, through the Typer app the `keel` command registers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from workspace_repos import make_repo, write

from keel import Keel
from keel.cli.workspace_commands import app
from keel.workspace import snapshots
from keel.workspace.model import Workspace
from keel.workspace.worktrees import WorkspaceManager

runner = CliRunner()


def keel(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"KEEL_HOME": str(home), "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


async def _start(home: Path, repo: Path, team: list[dict[str, Any]]) -> Workspace:
    async with await Keel.open(home) as runtime:
        session = await runtime.create_session(
            "Improve the app", team, config={"workspace": str(repo)}
        )
    workspace = await WorkspaceManager(home).open_session(session.id, repo)
    write(workspace.root, {"app.py": "print('v2')\n"})
    await snapshots.snapshot(workspace, "the agent's first edit")
    return workspace


@pytest.fixture
def workspace(home: Path, tmp_path: Path, team: list[dict[str, Any]]) -> Workspace:
    repo = make_repo(tmp_path / "project", {"app.py": "print('v1')\n"})
    return asyncio.run(_start(home, repo, team))


def test_snapshots_lists_them_in_a_table_and_as_json(home: Path, workspace: Workspace) -> None:
    code, out, _ = keel(home, "snapshots", workspace.session_id)
    assert code == 0
    assert "the agent's first edit" in out
    assert "start" in out

    code, out, _ = keel(home, "snapshots", workspace.session_id, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(row["id"], row["filesChanged"]) for row in rows] == [("0", 0), ("1", 1)]


def test_diff_shows_the_change_between_snapshots_and_against_the_files_now(
    home: Path, workspace: Workspace
) -> None:
    code, out, _ = keel(home, "diff", workspace.session_id, "0", "1")
    assert code == 0
    assert "-print('v1')\n+print('v2')" in out

    write(workspace.root, {"app.py": "print('v3')\n"})
    code, out, _ = keel(home, "diff", workspace.session_id)
    assert "-print('v2')\n+print('v3')" in out

    code, out, err = keel(home, "diff", workspace.session_id, "1", "1")
    assert (code, out) == (0, "")
    assert "no differences" in err


def test_rollback_restores_and_refuses_outside_changes_without_force(
    home: Path, workspace: Workspace
) -> None:
    code, out, _ = keel(home, "rollback", workspace.session_id, "0")
    assert code == 0
    assert "to snapshot 0 (start): 1 file(s) restored" in out
    assert (workspace.root / "app.py").read_text() == "print('v1')\n"

    write(workspace.root, {"app.py": "edited by hand\n"})
    code, _, err = keel(home, "rollback", workspace.session_id, "1")
    assert code == 2
    assert err.startswith("error: session")
    assert "no snapshot records (app.py)" in err
    assert (workspace.root / "app.py").read_text() == "edited by hand\n"

    code, out, _ = keel(home, "rollback", workspace.session_id, "1", "--force")
    assert code == 0
    assert "kept in snapshot 3" in out
    assert (workspace.root / "app.py").read_text() == "print('v2')\n"


def test_bad_sessions_and_snapshots_are_one_line_errors(home: Path, workspace: Workspace) -> None:
    code, _, err = keel(home, "rollback", workspace.session_id, "42")
    assert code == 2
    assert "has no snapshot '42'" in err

    code, _, err = keel(home, "snapshots", "s_missing")
    assert code == 2
    assert err.startswith("error:")
    assert "s_missing" in err
