"""Snapshots: the full state of a workspace as a commit on a hidden ref, diffs between
them, rollback that restores one exactly (and refuses, or keeps, changes made outside
Keel), and the final patch. On worktrees of real repositories and on plain directories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path

import pytest
from workspace_repos import committed_files, git, make_repo, refs, tree_files, user_state, write

from keel.workspace import snapshots
from keel.workspace.errors import DirtyWorkspace, SnapshotNotFound, WorkspaceError
from keel.workspace.model import Workspace, WorkspaceKind
from keel.workspace.worktrees import WorkspaceManager

FILES = {
    ".gitignore": "*.log\nbuild/\n",
    "README.md": "# project\n",
    "src/app.py": "def main():\n    return 1\n",
    "src/util.py": "X = 1\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project", FILES)


@pytest.fixture
def manager(tmp_path: Path) -> WorkspaceManager:
    return WorkspaceManager(tmp_path / "keel-home")


@pytest.fixture
async def workspace(repo: Path, manager: WorkspaceManager) -> Workspace:
    return await manager.open_session("s1", repo)


async def test_a_snapshot_records_untracked_files_but_not_ignored_ones(
    workspace: Workspace, repo: Path
) -> None:
    write(workspace.root, {"new.py": "new\n", "debug.log": "noise\n", "build/out.bin": "b\n"})
    worktree_status = git(workspace.root, "status", "--porcelain")

    snap = await snapshots.snapshot(workspace, "after the first edit")

    assert (snap.id, snap.label, snap.files_changed) == ("1", "after the first edit", 1)
    assert refs(repo, "refs/keel/s1/snapshots/") == [
        "refs/keel/s1/snapshots/0",
        "refs/keel/s1/snapshots/1",
    ]
    recorded = committed_files(repo, snap.commit)
    assert "new.py" in recorded
    assert "src/app.py" in recorded
    assert "debug.log" not in recorded
    assert "build/out.bin" not in recorded
    assert git(repo, "rev-parse", "keel/s1") == git(repo, "rev-parse", "main")
    assert git(workspace.root, "status", "--porcelain") == worktree_status


async def test_an_unchanged_workspace_gets_no_new_snapshot(workspace: Workspace) -> None:
    write(workspace.root, {"a.txt": "a\n"})
    first = await snapshots.snapshot(workspace, "one")
    again = await snapshots.snapshot(workspace, "two")
    write(workspace.root, {"ignored.log": "ignored files do not count\n"})
    third = await snapshots.snapshot(workspace, "three")

    assert again.commit == first.commit
    assert third.commit == first.commit
    assert [s.number for s in await snapshots.list_snapshots(workspace)] == [0, 1]


async def test_snapshots_are_listed_with_labels_and_changed_file_counts(
    workspace: Workspace,
) -> None:
    write(workspace.root, {"a.txt": "a\n", "b.txt": "b\n"})
    await snapshots.snapshot(workspace, "two files")
    (workspace.root / "a.txt").unlink()
    second = await snapshots.snapshot(workspace, "one removed")

    listed = await snapshots.list_snapshots(workspace)

    assert [(s.id, s.label, s.files_changed) for s in listed] == [
        ("0", "start", 0),
        ("1", "two files", 2),
        ("2", "one removed", 1),
    ]
    assert await snapshots.get_snapshot(workspace, second.short) == listed[2]
    assert (await snapshots.get_snapshot(workspace, second.commit[:6])).number == 2


async def test_diff_between_snapshots_and_against_the_files_now(workspace: Workspace) -> None:
    write(workspace.root, {"src/app.py": "def main():\n    return 2\n"})
    await snapshots.snapshot(workspace, "return 2")
    write(workspace.root, {"src/app.py": "def main():\n    return 3\n"})

    between = await snapshots.diff(workspace, "0", "1")
    since_latest = await snapshots.diff(workspace)
    since_start = await snapshots.diff(workspace, "0")

    assert "diff --git a/src/app.py b/src/app.py" in between
    assert "-    return 1\n+    return 2" in between
    assert "-    return 2\n+    return 3" in since_latest
    assert "-    return 1\n+    return 3" in since_start
    assert await snapshots.diff(workspace, "1", "1") == ""


async def test_rollback_restores_added_removed_and_modified_files_exactly(
    workspace: Workspace, repo: Path
) -> None:
    write(workspace.root, {"keep.log": "ignored, never touched\n"})
    script = workspace.root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    os.symlink("src/app.py", workspace.root / "app-link")
    one = await snapshots.snapshot(workspace, "before the agent")
    expected = tree_files(workspace.root)

    write(workspace.root, {"src/app.py": "broken\n", "added/deep/new.py": "new\n"})
    (workspace.root / "src" / "util.py").unlink()
    (workspace.root / "app-link").unlink()
    script.chmod(0o644)
    await snapshots.snapshot(workspace, "after the agent")

    result = await snapshots.rollback(workspace, one.id)

    assert tree_files(workspace.root) == expected
    assert not (workspace.root / "added").exists()
    assert os.readlink(workspace.root / "app-link") == "src/app.py"
    assert stat.S_IMODE(script.stat().st_mode) & 0o111
    assert result.restored.number == one.number
    assert set(result.files) == {
        "src/app.py",
        "added/deep/new.py",
        "src/util.py",
        "app-link",
        "run.sh",
    }
    assert result.safety is None
    assert (result.snapshot.number, result.snapshot.label) == (3, "rollback to 1")
    assert result.snapshot.tree == one.tree
    assert git(repo, "rev-parse", "keel/s1") == git(repo, "rev-parse", "main")
    assert await snapshots.unrecorded_changes(workspace) == []


async def test_rollback_without_a_snapshot_undoes_the_last_recorded_change(
    workspace: Workspace,
) -> None:
    write(workspace.root, {"a.txt": "1\n"})
    await snapshots.snapshot(workspace, "one")
    write(workspace.root, {"a.txt": "2\n"})
    await snapshots.snapshot(workspace, "two")

    first = await snapshots.rollback(workspace)
    assert (workspace.root / "a.txt").read_text() == "1\n"
    assert first.restored.number == 1

    await snapshots.rollback(workspace, "0")
    assert not (workspace.root / "a.txt").exists()
    assert tree_files(workspace.root) == FILES


async def test_rollback_refuses_changes_made_outside_keel_and_keeps_them_with_force(
    workspace: Workspace, repo: Path
) -> None:
    write(workspace.root, {"a.txt": "recorded\n"})
    await snapshots.snapshot(workspace, "one")
    write(workspace.root, {"a.txt": "edited by hand\n", "b.txt": "new by hand\n"})

    with pytest.raises(
        DirtyWorkspace, match=r"2 changed file\(s\) that no snapshot records"
    ) as caught:
        await snapshots.rollback(workspace, "0")
    assert sorted(caught.value.files) == ["a.txt", "b.txt"]
    assert (workspace.root / "a.txt").read_text() == "edited by hand\n"
    assert [s.number for s in await snapshots.list_snapshots(workspace)] == [0, 1]

    result = await snapshots.rollback(workspace, "0", force=True)

    assert tree_files(workspace.root) == FILES
    assert result.safety is not None
    assert result.safety.label == "before rollback to 0"
    assert git(repo, "show", f"{result.safety.commit}:a.txt") == "edited by hand\n"
    assert git(repo, "show", f"{result.safety.commit}:b.txt") == "new by hand\n"
    assert result.snapshot.number == result.safety.number + 1


async def test_unknown_snapshot_ids_are_refused_clearly(workspace: Workspace) -> None:
    for call in (
        snapshots.rollback(workspace, "7"),
        snapshots.diff(workspace, "deadbeef"),
        snapshots.get_snapshot(workspace, "latest"),
    ):
        with pytest.raises(
            SnapshotNotFound, match=r"has no snapshot '.*' \(its snapshots: 0 to 0\)"
        ):
            await call


async def test_nothing_to_roll_back_at_the_start(workspace: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="nothing to roll back"):
        await snapshots.rollback(workspace)


async def test_the_final_patch_applies_to_the_commit_the_session_started_from(
    workspace: Workspace, repo: Path, tmp_path: Path
) -> None:
    write(workspace.root, {"src/app.py": "def main():\n    return 42\n", "docs/new.md": "new\n"})
    (workspace.root / "src" / "util.py").unlink()
    (workspace.root / "logo.bin").write_bytes(bytes(range(256)) * 4)
    await snapshots.snapshot(workspace, "work")
    write(workspace.root, {"README.md": "# project, not yet snapshotted\n"})

    patch = await snapshots.final_patch(workspace)

    check = tmp_path / "check"
    git(repo, "worktree", "add", "-q", "--detach", str(check), "main")
    git(check, "apply", "--index", "-", input=patch)
    assert tree_files(check) == tree_files(workspace.root)
    assert (check / "logo.bin").read_bytes() == bytes(range(256)) * 4


async def test_a_plain_directory_is_snapshotted_in_a_shadow_git_directory(
    manager: WorkspaceManager, tmp_path: Path
) -> None:
    folder = tmp_path / "plain"
    write(folder, {"notes.txt": "v1\n", "data/table.csv": "a,b\n", ".gitignore": "*.tmp\n"})
    workspace = await manager.open_session("s1", folder)

    assert workspace.kind is WorkspaceKind.DIRECTORY
    assert workspace.root == folder.resolve()
    assert workspace.branch is None
    assert manager.home / "shadow" in workspace.git_dir.parents
    write(folder, {"notes.txt": "v2\n", "scratch.tmp": "ignored\n", "new.txt": "n\n"})
    (folder / "data" / "table.csv").unlink()
    await snapshots.snapshot(workspace, "edited")

    result = await snapshots.rollback(workspace, "0")

    assert set(result.files) == {"notes.txt", "new.txt", "data/table.csv"}
    assert tree_files(folder) == {
        ".gitignore": "*.tmp\n",
        "data/table.csv": "a,b\n",
        "notes.txt": "v1\n",
        "scratch.tmp": "ignored\n",
    }
    assert not (folder / ".git").exists()
    assert "notes.txt" in await snapshots.diff(workspace, "1", "0")
    with pytest.raises(WorkspaceError, match="no branch"):
        await manager.commit_changes(workspace, "x")

    await manager.close_session("s1")
    assert tree_files(folder)["notes.txt"] == "v1\n"
    assert not workspace.git_dir.exists()


async def test_keel_home_inside_a_plain_directory_is_never_snapshotted(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    write(folder, {"main.py": "print(1)\n"})
    manager = WorkspaceManager(folder / ".keel")
    workspace = await manager.open_session("s1", folder)
    write(folder, {"main.py": "print(2)\n"})

    snap = await snapshots.snapshot(workspace, "edit")

    listing = git(workspace.git_dir, "ls-tree", "-r", "--name-only", snap.commit)
    assert listing.split() == ["main.py"]
    await snapshots.rollback(workspace, "0")
    assert (folder / "main.py").read_text() == "print(1)\n"
    assert (folder / ".keel" / "workspaces" / "s1").is_dir()


async def test_two_sessions_on_one_plain_directory_are_told_they_share_it(
    manager: WorkspaceManager, tmp_path: Path
) -> None:
    folder = tmp_path / "plain"
    write(folder, {"a.txt": "a\n"})
    await manager.open_session("s1", folder)
    second = await manager.open_session("s2", folder)
    (note,) = second.notes
    assert "s1" in note
    assert "not isolated" in note


async def test_a_task_of_a_plain_directory_session_gets_a_worktree_of_the_shadow(
    manager: WorkspaceManager, tmp_path: Path
) -> None:
    folder = tmp_path / "plain"
    write(folder, {"a.txt": "a\n"})
    parent = await manager.open_session("s1", folder)
    write(folder, {"b.txt": "b\n"})
    child = await manager.open_task(parent, "t1")
    assert tree_files(child.root) == {"a.txt": "a\n", "b.txt": "b\n"}
    write(child.root, {"c.txt": "c\n"})

    result = await manager.merge_back(child)

    assert result.merged
    assert result.files == ("c.txt",)
    assert tree_files(folder) == {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"}
    assert not (folder / ".git").exists()


async def test_snapshots_never_touch_the_users_repository(
    repo: Path, manager: WorkspaceManager
) -> None:
    write(repo, {"README.md": "# uncommitted\n"})
    before = user_state(repo)
    workspace = await manager.open_session("s1", repo)
    write(workspace.root, {"x.txt": "x\n"})
    await snapshots.snapshot(workspace, "x")
    await snapshots.rollback(workspace)
    await snapshots.final_patch(workspace)
    assert user_state(repo) == before


async def test_the_count_a_snapshot_reports_is_the_count_it_is_listed_with(
    workspace: Workspace,
) -> None:
    reported = []
    write(workspace.root, {"a.txt": "a\n", "b.txt": "b\n"})
    reported.append(await snapshots.snapshot(workspace, "two new"))
    (workspace.root / "a.txt").touch()
    write(workspace.root, {"b.txt": "b2\n"})
    reported.append(await snapshots.snapshot(workspace, "one changed, one touched"))
    reported.append((await snapshots.rollback(workspace, "0")).snapshot)
    write(workspace.root, {"c.txt": "c\n"})
    reported.append(await snapshots.snapshot(workspace, "after the rollback"))

    listed = {snap.number: snap.files_changed for snap in await snapshots.list_snapshots(workspace)}
    assert [snap.files_changed for snap in reported] == [2, 1, 2, 1]
    assert [listed[snap.number] for snap in reported] == [2, 1, 2, 1]


async def test_a_snapshot_is_found_again_by_another_process_without_its_cache(
    workspace: Workspace, manager: WorkspaceManager
) -> None:
    write(workspace.root, {"a.txt": "a\n"})
    first = await snapshots.snapshot(workspace, "one")
    git(workspace.common_dir, "pack-refs", "--all")  # refs move out of their loose files
    write(workspace.root, {"a.txt": "a2\n"})

    second = await snapshots.snapshot(workspace, "two")

    assert second.number == first.number + 1
    assert [s.number for s in await snapshots.list_snapshots(workspace)] == [0, 1, 2]


async def test_concurrent_snapshots_take_turns_and_record_the_change_once(
    workspace: Workspace,
) -> None:
    write(workspace.root, {"a.txt": "a\n"})
    taken = await asyncio.gather(*(snapshots.snapshot(workspace, f"try {n}") for n in range(5)))
    assert {snap.number for snap in taken} == {1}
    assert len(await snapshots.list_snapshots(workspace)) == 2


async def test_a_cancelled_snapshot_leaves_no_lock_behind(workspace: Workspace) -> None:
    for delay in (0.0, 0.002, 0.005, 0.01):
        write(workspace.root, {"a.txt": f"{delay}\n"})
        attempt = asyncio.create_task(snapshots.snapshot(workspace, "cancelled"))
        await asyncio.sleep(delay)
        attempt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await attempt
        done = await snapshots.snapshot(workspace, "after the cancellation")
        assert git(workspace.root, "show", f"{done.commit}:a.txt") == f"{delay}\n"
    assert not list(workspace.index_file.parent.glob("*.lock"))


async def test_a_broken_keel_index_is_made_again(workspace: Workspace) -> None:
    write(workspace.root, {"a.txt": "a\n"})
    await snapshots.snapshot(workspace, "one")
    workspace.index_file.write_bytes(b"DIRC broken")
    write(workspace.root, {"a.txt": "a2\n"})

    snap = await snapshots.snapshot(workspace, "two")

    assert snap.number == 2
    assert git(workspace.root, "show", f"{snap.commit}:a.txt") == "a2\n"
