"""Git inside the sandbox: a command in a worktree sees the repository's git directories
(read-only), so `git status` and `git diff` work, while git writes that would reach the
user's branches are refused. The repositories live under /tmp, which bubblewrap's private
/tmp hides: exactly where a worktree's `.git` file used to lead nowhere. Tests that run
bubblewrap skip, with the reason, where it cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_repos import git, make_repo

from keel.tools import ToolContext
from keel.tools.shell import RunCommand
from keel.workspace import BubblewrapSandbox, SandboxUnavailable
from keel.workspace.git_mounts import git_mounts
from keel.workspace.model import Workspace
from keel.workspace.worktrees import WorkspaceManager

FILES = {"README.md": "# project\n", "src/app.py": "def main():\n    return 1\n"}


@pytest.fixture
def bwrap() -> BubblewrapSandbox:
    try:
        return BubblewrapSandbox()
    except SandboxUnavailable as error:
        pytest.skip(f"bubblewrap cannot run here: {error}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project", FILES)


@pytest.fixture
def manager(tmp_path: Path) -> WorkspaceManager:
    return WorkspaceManager(tmp_path / "keel-home")


async def run_command(bwrap: BubblewrapSandbox, workspace: Workspace, command: str) -> str:
    context = ToolContext(workspace.path, workspace.session_id, "t1", "agent")
    return await RunCommand(bwrap).run({"command": command}, context)


async def test_git_status_and_diff_work_in_a_task_worktree_inside_the_sandbox(
    bwrap: BubblewrapSandbox, repo: Path, manager: WorkspaceManager
) -> None:
    session = await manager.open_session("s1", repo)
    task = await manager.open_task(session, "t1")
    (task.path / "src" / "app.py").write_text("def main():\n    return 2\n")
    (task.path / "notes.txt").write_text("new\n")

    status = await run_command(bwrap, task, "git status --porcelain")
    diff = await run_command(bwrap, task, "git diff")

    assert status.splitlines() == ["exit code 0", " M src/app.py", "?? notes.txt"]
    assert diff.startswith("exit code 0")
    assert "+    return 2" in diff


async def test_git_writes_in_the_sandbox_are_refused_and_the_user_s_branch_stays(
    bwrap: BubblewrapSandbox, repo: Path, manager: WorkspaceManager
) -> None:
    session = await manager.open_session("s1", repo)
    head = git(repo, "rev-parse", "main").strip()
    (session.path / "README.md").write_text("# changed\n")

    moved = await run_command(bwrap, session, "git update-ref refs/heads/main HEAD~0^{tree}")
    committed = await run_command(
        bwrap, session, "git -c user.name=a -c user.email=a@b commit -qam inside"
    )

    assert not moved.startswith("exit code 0")
    assert not committed.startswith("exit code 0")
    assert "Read-only file system" in committed
    assert git(repo, "rev-parse", "main").strip() == head
    assert git(repo, "rev-parse", "keel/s1").strip() == head
    assert (session.path / "README.md").read_text() == "# changed\n"


async def test_git_works_in_a_session_opened_on_a_subdirectory(
    bwrap: BubblewrapSandbox, repo: Path, manager: WorkspaceManager
) -> None:
    session = await manager.open_session("s1", repo / "src")
    (session.path / "app.py").write_text("def main():\n    return 3\n")

    status = await run_command(bwrap, session, "git status --porcelain .")

    assert status.splitlines() == ["exit code 0", " M src/app.py"]  # paths from the top


async def test_the_mounts_are_the_git_directories_a_worktree_needs(
    repo: Path, manager: WorkspaceManager
) -> None:
    session = await manager.open_session("s1", repo / "src")

    assert git_mounts(session.path) == [session.root, session.common_dir]
    assert git_mounts(session.root) == [session.common_dir]


def test_a_repository_s_own_tree_needs_only_its_top_and_a_plain_directory_nothing(
    tmp_path: Path, repo: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    assert git_mounts(repo) == []
    assert git_mounts(repo / "src") == [repo]
    assert git_mounts(plain) == []
