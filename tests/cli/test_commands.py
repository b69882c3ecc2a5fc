from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.main import DEMO_GOAL, app

runner = CliRunner()


@pytest.fixture
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return {"KEEL_HOME": str(home), "COLUMNS": "200", "WORKSPACE": str(workspace)}


def keel(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    if args[0] == "run":
        args = (*args, "--workspace", env["WORKSPACE"])
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_run_shows_the_session_and_ends_with_a_summary(env: dict[str, str], home: Path) -> None:
    code, out, _ = keel(env, "run", "Write the parser and test it", "--plain")
    assert code == 0
    assert "session.created" in out
    assert "plan.created" in out
    assert "session.completed" in out
    assert "tasks      4 done" in out
    assert str(home.resolve()) in out


def test_sessions_events_and_tasks_show_what_ran(env: dict[str, str]) -> None:
    keel(env, "run", "Write the parser and test it", "--plain")
    code, out, _ = keel(env, "sessions", "--json")
    assert code == 0
    (session,) = [json.loads(line) for line in out.splitlines()]
    assert session["status"] == "done"
    assert session["agentVersions"] == {"coder": 1, "planner": 1, "reviewer": 1, "tester": 1}

    code, out, _ = keel(env, "events", session["id"], "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "session.completed"

    code, out, _ = keel(env, "events", session["id"], "--after", str(len(events) - 1))
    assert out.count("\n") == 1

    code, out, _ = keel(env, "tasks", session["id"])
    assert code == 0
    assert "Write the parser" in out
    assert "[tester]" in out


def test_demo_fixes_the_failing_test_of_a_new_git_repository(
    env: dict[str, str], home: Path
) -> None:
    code, out, _ = keel(env, "demo", "--plain")
    assert code == 0
    assert DEMO_GOAL[:30] in out
    assert "The tests fail: FAIL: test_add" in out
    assert "edit_file ok" in out
    assert "The tests pass (Ran 2 tests" in out
    repo = Path(re.search(r"demo repository: (\S+) ", out)[1])  # type: ignore[index]
    _, sessions_json, _ = keel(env, "sessions", "--json")
    session = json.loads(sessions_json.splitlines()[0])["id"]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    # the user's branch and files are untouched; the fix is on the session's branch
    assert "return a - b" in (repo / "calc.py").read_text()
    assert git("status", "--porcelain") == ""
    assert git("branch", "--show-current") == "main"
    assert "return a + b" in git("show", f"keel/{session}:calc.py")
    code, out, _ = keel(env, "snapshots", session)
    assert code == 0
    assert "merge task" in out  # the coder edited in its own task worktree
    code, out, _ = keel(env, "diff", session, "0")
    assert "+    return a + b" in out


def test_an_unknown_session_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    for command in ("events", "tasks", "resume"):
        code, _, err = keel(env, command, "s_nope")
        assert code == 2
        assert err.strip() == "error: no session 's_nope' in this store; `keel sessions` lists them"


def test_resuming_a_finished_session_is_refused(env: dict[str, str]) -> None:
    keel(env, "run", "Do it", "--plain")
    _, out, _ = keel(env, "sessions", "--json")
    session_id = json.loads(out.splitlines()[0])["id"]
    code, _, err = keel(env, "resume", session_id)
    assert code == 2
    assert "has already ended (done)" in err


def test_agents_validate_lists_good_agents(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: a\nrole: worker\nmodel: scripted:worker\n")
    code, out, _ = keel(env, "agents", "validate", str(folder))
    assert code == 0
    assert "1 agent valid" in out


def test_agents_validate_names_each_bad_file_and_field(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: a\nrole: worker\nmodel: scripted:worker\n")
    (folder / "b.yaml").write_text("name: b\nrole: worker\nmodel: openia:gpt\n")
    code, out, err = keel(env, "agents", "validate", str(folder))
    assert code == 2
    assert out == ""
    assert "1 invalid agent file" in err
    assert f"{folder / 'b.yaml'}: field 'model': unknown model provider 'openia'" in err


def test_a_run_with_a_bad_agent_folder_registers_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: a\nrole: worker\nmodel: scripted:worker\n")
    (folder / "b.yaml").write_text(
        "name: b\nrole: worker\nmodel: scripted:worker\nmemoryScope: x\n"
    )
    code, _, err = keel(env, "run", "Do it", "--agents", str(folder))
    assert code == 2
    assert "field 'memoryScope'" in err
    code, out, _ = keel(env, "agents", "list")
    assert "no agents registered yet" in out
    _, out, _ = keel(env, "sessions")
    assert "no sessions yet" in out


def test_run_with_an_agent_folder_and_a_model_override(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "solo.yaml").write_text("name: solo\nrole: helper\nmodel: scripted:echo\n")
    code, out, _ = keel(env, "run", "Say hi", "--agents", str(folder), "--model", "scripted")
    assert code == 0
    assert "scripted:worker" in out  # the override gave the helper the worker script
    code, _, err = keel(env, "run", "Say hi", "--model", "gpt-4")
    assert code == 2
    assert "'gpt-4' is not a model" in err


def test_approvals_are_listed_and_answered_from_the_cli(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    import asyncio

    from keel import Keel
    from keel.guardrails import approvals as store

    async def ask() -> str:
        async with await Keel.open(home) as keel:
            session = await keel.start_flow("needs a yes")
            task = await keel.tasks.create(keel.run_id, session_id=session.id, goal="g")

            def request(tx: object) -> str:
                return store.request_in(
                    tx,  # type: ignore[arg-type]
                    keel.run_id,
                    session_id=session.id,
                    task_id=task.id,
                    agent="coder",
                    call_id="c1",
                    tool="run_command",
                    arguments={"command": "git push"},
                    kind="guardrail",
                    risk=70,
                    reasons=["pushes to a remote"],
                    wait_s=60,
                ).id

            return await keel.engine.write(request)

    approval_id = asyncio.run(ask())
    code, out, _ = keel(env, "approvals")
    assert code == 0
    assert approval_id in out
    assert "git push" in out
    code, _, err = keel(env, "approve", approval_id)
    assert code == 2
    assert "--allow or --deny" in err
    code, out, _ = keel(env, "approve", approval_id, "--deny", "--note", "not today")
    assert (code, out.strip()) == (0, f"approval {approval_id} denied")
    code, _, err = keel(env, "approve", approval_id, "--allow")
    assert code == 2
    assert "cannot go from 'denied'" in err
    code, out, _ = keel(env, "approvals")
    assert "no approvals waiting" in out


def test_delete_removes_a_session_and_its_worktree(env: dict[str, str], tmp_path: Path) -> None:
    from keel.cli.demo import create_demo_repo

    repo = create_demo_repo(tmp_path / "repos")
    code, _, _ = keel(env, "run", "Look around", "--plain")
    env_repo = {**env, "WORKSPACE": str(repo)}
    code, _, _ = keel(env_repo, "run", "Fix it", "--plain")
    assert code == 0
    _, out, _ = keel(env, "sessions", "--json")
    session = json.loads(out.splitlines()[0])["id"]

    def branches() -> str:
        return subprocess.run(
            ["git", "branch", "--list", "keel/*"], cwd=repo, capture_output=True, text=True
        ).stdout

    assert f"keel/{session}" in branches()
    code, out, _ = keel(env, "delete", session)
    assert (code, out.strip()) == (0, f"session {session} deleted")
    assert f"keel/{session}" not in branches()
    code, _, err = keel(env, "events", session)
    assert code == 2
    assert "no session" in err
