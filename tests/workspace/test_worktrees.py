"""Worktrees: a session works in its own worktree on its own branch, a sub-task in one
branched from its parent and merged back, and the user's branch, index and files are never
touched. Every test runs real git on real repositories in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from workspace_repos import (
    committed_files,
    git,
    make_repo,
    refs,
    tree_files,
    user_state,
    write,
)

from keel.workspace import snapshots
from keel.workspace.errors import PathOutsideWorkspace, WorkspaceError, WorkspaceNotFound
from keel.workspace.model import WorkspaceKind
from keel.workspace.worktrees import WorkspaceManager

FILES = {"README.md": "# project\n", "src/app.py": "def main():\n    return 1\n"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project", FILES)


@pytest.fixture
def manager(tmp_path: Path) -> WorkspaceManager:
    return WorkspaceManager(tmp_path / "keel-home")


async def test_a_session_works_in_its_own_worktree_on_its_branch(
    repo: Path, manager: WorkspaceManager
) -> None:
    before = user_state(repo)
    workspace = await manager.open_session("s1", repo)

    assert workspace.kind is WorkspaceKind.WORKTREE
    assert workspace.branch == "keel/s1"
    assert manager.home / "worktrees" in workspace.root.parents
    assert workspace.root.name == "s1"
    assert tree_files(workspace.root) == FILES
    assert git(repo, "rev-parse", "keel/s1") == git(repo, "rev-parse", "main")
    assert str(workspace.root) in git(repo, "worktree", "list")
    assert workspace.notes == ()

    write(workspace.root, {"src/app.py": "changed by the agent\n", "new.py": "x = 1\n"})
    assert user_state(repo) == before


async def test_uncommitted_changes_of_the_user_are_reported_and_left_alone(
    repo: Path, manager: WorkspaceManager
) -> None:
    write(repo, {"README.md": "# edited, not committed\n", "notes.txt": "untracked\n"})
    write(repo, {"staged.py": "staged = True\n"})
    git(repo, "add", "staged.py")
    before = user_state(repo)

    workspace = await manager.open_session("s1", repo)

    (note,) = workspace.notes
    assert "uncommitted changes" in note
    assert "README.md" in note
    assert "staged.py" in note
    assert "notes.txt" in note
    assert "left as they are" in note
    assert user_state(repo) == before
    assert tree_files(workspace.root) == FILES


async def test_two_sessions_on_one_repository_never_share_a_worktree(
    repo: Path, manager: WorkspaceManager
) -> None:
    first = await manager.open_session("s1", repo)
    second = await manager.open_session("s2", repo)

    assert first.root != second.root
    assert (first.branch, second.branch) == ("keel/s1", "keel/s2")
    write(first.root, {"only-in-first.txt": "1\n"})
    assert not (second.root / "only-in-first.txt").exists()

    again = await manager.open_session("s1", repo)
    assert again.root == first.root
    assert (again.root / "only-in-first.txt").exists()
    assert (await manager.find_session("s1")).root == first.root


async def test_a_session_opened_on_a_subdirectory_works_in_it_within_its_worktree(
    repo: Path, manager: WorkspaceManager
) -> None:
    workspace = await manager.open_session("s1", repo / "src")

    assert workspace.path == workspace.root / "src"
    assert (workspace.path / "app.py").is_file()
    assert workspace.resolve("app.py") == (workspace.path / "app.py").resolve()


async def test_a_task_worktree_starts_from_the_parent_files_and_merges_back(
    repo: Path, manager: WorkspaceManager
) -> None:
    parent = await manager.open_session("s1", repo)
    write(parent.root, {"draft.md": "parent's uncommitted work\n"})

    child = await manager.open_task(parent, "t1")

    assert child.branch == "keel/s1.t1"
    assert child.root != parent.root
    assert child.root.parent == parent.root.parent
    assert (child.root / "draft.md").read_text() == "parent's uncommitted work\n"
    write(child.root, {"src/app.py": "def main():\n    return 2\n", "src/new.py": "new\n"})
    write(parent.root, {"README.md": "# project, edited by the parent meanwhile\n"})
    branch_before = git(repo, "rev-parse", "keel/s1")

    result = await manager.merge_back(child)

    assert result.merged
    assert not result.conflicted
    assert set(result.files) == {"src/app.py", "src/new.py"}
    assert tree_files(parent.root) == {
        "README.md": "# project, edited by the parent meanwhile\n",
        "draft.md": "parent's uncommitted work\n",
        "src/app.py": "def main():\n    return 2\n",
        "src/new.py": "new\n",
    }
    assert result.snapshot is not None
    assert result.snapshot.label == "merge task t1"
    parents = git(repo, "rev-list", "--parents", "-n", "1", result.snapshot.commit).split()
    assert parents[2] == result.task_commit
    assert not child.root.exists()
    assert refs(repo, "refs/heads/keel/s1.t1") == []
    assert git(repo, "rev-parse", "keel/s1") == branch_before
    assert await snapshots.unrecorded_changes(parent) == []


async def test_a_merge_conflict_is_returned_and_the_parent_stays_exactly_as_it_was(
    repo: Path, manager: WorkspaceManager
) -> None:
    parent = await manager.open_session("s1", repo)
    child = await manager.open_task(parent, "t1")
    write(child.root, {"src/app.py": "def main():\n    return 'task'\n"})
    write(parent.root, {"src/app.py": "def main():\n    return 'parent'\n", "p.txt": "p\n"})
    files_before = tree_files(parent.root)

    result = await manager.merge_back(child)

    assert result.conflicted
    assert not result.merged
    assert result.files == ("src/app.py",)
    assert result.snapshot is None
    assert "CONFLICT (content): Merge conflict in src/app.py" in result.conflict
    assert "<<<<<<<" in result.conflict
    assert ">>>>>>>" in result.conflict
    assert "+    return 'task'" in result.conflict
    assert tree_files(parent.root) == files_before
    assert git(parent.root, "status", "--porcelain", "--untracked-files=no").strip() in {
        "M src/app.py",
        "",
    }
    assert child.root.exists(), "the task keeps its worktree to resolve the conflict"


async def test_a_task_that_changed_nothing_merges_without_a_new_snapshot(
    repo: Path, manager: WorkspaceManager
) -> None:
    parent = await manager.open_session("s1", repo)
    child = await manager.open_task(parent, "t1")
    count = len(await snapshots.list_snapshots(parent))

    result = await manager.merge_back(child)

    assert result.merged
    assert result.files == ()
    assert len(await snapshots.list_snapshots(parent)) == count


async def test_commit_changes_commits_to_the_session_branch_only(
    repo: Path, manager: WorkspaceManager
) -> None:
    before = user_state(repo)
    workspace = await manager.open_session("s1", repo)
    write(workspace.root, {"src/app.py": "done\n", "added.txt": "a\n"})

    commit = await manager.commit_changes(workspace, "the session's work")

    assert git(repo, "rev-parse", "keel/s1").strip() == commit
    assert git(repo, "log", "-1", "--format=%an <%ae>", commit).strip() == "Keel <keel@localhost>"
    assert "added.txt" in committed_files(repo, commit)
    assert await manager.commit_changes(workspace, "again") == commit
    assert user_state(repo) == before


async def test_closing_a_session_removes_its_worktrees_branches_and_refs(
    repo: Path, manager: WorkspaceManager
) -> None:
    before = user_state(repo)
    workspace = await manager.open_session("s1", repo)
    other = await manager.open_session("s2", repo)
    child = await manager.open_task(workspace, "t1")
    write(workspace.root, {"x.txt": "x\n"})
    await snapshots.snapshot(workspace, "one")

    await manager.close_session("s1")

    assert not workspace.root.exists()
    assert not child.root.exists()
    assert refs(repo, "refs/heads/keel/") == ["refs/heads/keel/s2"]
    assert refs(repo, "refs/keel/s1/") == []
    assert str(workspace.root) not in git(repo, "worktree", "list")
    assert not (manager.home / "workspaces" / "s1").exists()
    assert other.root.exists()
    with pytest.raises(WorkspaceNotFound, match="session s1 has no workspace"):
        await manager.find_session("s1")
    assert user_state(repo) == before


async def test_prune_removes_the_workspaces_of_sessions_that_are_gone(
    repo: Path, manager: WorkspaceManager
) -> None:
    gone = await manager.open_session("gone", repo)
    live = await manager.open_session("live", repo)
    await manager.open_task(gone, "t1")

    assert await manager.prune({"live"}) == ["gone"]

    assert not gone.root.exists()
    assert live.root.exists()
    assert refs(repo, "refs/heads/keel/") == ["refs/heads/keel/live"]
    assert refs(repo, "refs/keel/gone/") == []
    assert await manager.prune({"live"}) == []


async def test_prune_lets_git_forget_a_worktree_deleted_by_hand(
    repo: Path, manager: WorkspaceManager
) -> None:
    workspace = await manager.open_session("s1", repo)
    git(repo, "worktree", "remove", "--force", str(workspace.root))
    assert await manager.prune(set()) == ["s1"]
    assert git(repo, "worktree", "list").count("\n") == 1
    assert refs(repo, "refs/heads/keel/") == []


async def test_paths_that_lead_outside_the_workspace_are_refused(
    repo: Path, manager: WorkspaceManager, tmp_path: Path
) -> None:
    workspace = await manager.open_session("s1", repo)
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", workspace.root / "link.txt")

    assert workspace.resolve("src/app.py") == workspace.root / "src" / "app.py"
    for raw in ("../secret.txt", "src/../../secret.txt", str(tmp_path / "secret.txt"), "link.txt"):
        with pytest.raises(PathOutsideWorkspace, match=r"outside the workspace|absolute path"):
            workspace.resolve(raw)


async def test_bad_places_to_open_a_session_are_refused_with_the_reason(
    repo: Path, manager: WorkspaceManager, tmp_path: Path
) -> None:
    with pytest.raises(WorkspaceError, match="inside a git directory"):
        await manager.open_session("s1", repo / ".git")
    with pytest.raises(WorkspaceError, match="not a directory"):
        await manager.open_session("s1", tmp_path / "missing")
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(WorkspaceError, match="no commit yet"):
        await manager.open_session("s1", empty)
    manager.home.mkdir(parents=True, exist_ok=True)
    with pytest.raises(WorkspaceError, match="inside Keel's home"):
        await manager.open_session("s1", manager.home)
    with pytest.raises(WorkspaceError, match="cannot name a workspace"):
        await manager.open_session("../s1", repo)
    await manager.open_session("s1", repo)
    with pytest.raises(WorkspaceError, match="already works on"):
        await manager.open_session("s1", tmp_path)


async def test_git_variables_of_the_caller_cannot_redirect_keel(
    repo: Path, manager: WorkspaceManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = user_state(repo)
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    monkeypatch.setenv("GIT_INDEX_FILE", str(repo / ".git" / "index"))

    workspace = await manager.open_session("s1", repo)
    write(workspace.root, {"new.txt": "new\n"})
    await snapshots.snapshot(workspace, "with the caller's GIT_ variables set")
    await snapshots.rollback(workspace)

    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert user_state(repo) == before


async def test_a_task_of_a_task_merges_into_its_parent_task(
    repo: Path, manager: WorkspaceManager
) -> None:
    session = await manager.open_session("s1", repo)
    task = await manager.open_task(session, "t1")
    subtask = await manager.open_task(task, "t2")
    write(subtask.root, {"deep.txt": "from t2\n"})

    assert (await manager.merge_back(subtask)).merged
    assert (task.root / "deep.txt").read_text() == "from t2\n"
    assert not (session.root / "deep.txt").exists()
    assert (await manager.merge_back(task)).merged
    assert (session.root / "deep.txt").read_text() == "from t2\n"
    assert refs(repo, "refs/keel/s1/tasks/") == []


async def test_opening_a_task_twice_gives_the_same_worktree_and_discard_removes_it(
    repo: Path, manager: WorkspaceManager
) -> None:
    parent = await manager.open_session("s1", repo)
    child = await manager.open_task(parent, "t1")
    write(child.root, {"work.txt": "in progress\n"})

    again = await manager.open_task(parent, "t1")
    assert again.root == child.root
    assert (again.root / "work.txt").read_text() == "in progress\n"

    await manager.discard_task(child)
    assert not child.root.exists()
    assert refs(repo, "refs/heads/keel/") == ["refs/heads/keel/s1"]
    assert refs(repo, "refs/keel/s1/tasks/") == []
    assert not (parent.root / "work.txt").exists()


async def test_a_half_made_workspace_is_made_again(repo: Path, manager: WorkspaceManager) -> None:
    workspace = await manager.open_session("s1", repo)
    git(repo, "update-ref", "-d", "refs/keel/s1/snapshots/0")  # as if it died midway

    again = await manager.open_session("s1", repo)

    assert again.root == workspace.root
    assert refs(repo, "refs/keel/s1/snapshots/") == ["refs/keel/s1/snapshots/0"]
    assert tree_files(again.root) == FILES


async def test_closing_keeps_a_session_branch_the_user_checked_out(
    repo: Path, manager: WorkspaceManager
) -> None:
    await manager.open_session("s1", repo)
    git(repo, "branch", "look", "keel/s1")
    await manager.close_session("s1")
    assert refs(repo, "refs/heads/keel/") == []
    assert refs(repo, "refs/heads/look") == ["refs/heads/look"]

    await manager.open_session("s2", repo)
    elsewhere = repo.parent / "look-at-s2"
    git(repo, "worktree", "add", "-q", "--force", str(elsewhere), "keel/s2")
    await manager.close_session("s2")
    assert refs(repo, "refs/heads/keel/") == ["refs/heads/keel/s2"]
    assert git(elsewhere, "symbolic-ref", "HEAD").strip() == "refs/heads/keel/s2"
