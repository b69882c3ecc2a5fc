"""Snapshots of a workspace's files, diffs between them, rollback, and the final patch.

A snapshot records every file of the workspace that git does not ignore (tracked and
untracked) as a commit on `refs/keel/<session>/[tasks/<task>/]snapshots/<n>`, numbered from
0 (the state the workspace started from). It is built with Keel's own index file, kept
under Keel's home between snapshots, so `git add -A` only re-reads the files whose size or
time changed; no branch, no HEAD and no index of the user's or of the worktree moves.

"Dirty" has one meaning here: the workspace's files (as a snapshot would record them:
content, executable bit and symbolic links of every file git does not ignore) differ from
its latest snapshot. Keel records its own writes by snapshotting before and after each
batch of writing tool calls, so what is dirty was changed outside Keel. Ignored files and
empty directories are outside snapshots: never recorded, never restored, never dirty.

This module must never move a branch or touch a git index other than Keel's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from keel.workspace import snapshot_store as store
from keel.workspace.errors import DirtyWorkspace, GitError, SnapshotNotFound, WorkspaceError
from keel.workspace.model import Rollback, Snapshot, Workspace
from keel.workspace.state import both, index_holds, index_tree, workspace_lock
from keel.workspace.trees import changed_paths, restore_tree

START_LABEL = "start"
_SHOWN_FILES = 8


async def _catch_up(workspace: Workspace) -> tuple[str, list[str]]:
    """Bring Keel's index up to the workspace's files: the tree they make, and the paths
    whose content, mode or presence changed in the index on the way (`git add --verbose`
    leaves out files only touched)."""
    index_holds(workspace, None)
    git = workspace.git(keel_index=True)
    try:
        added = await git.run("add", "--all", "--verbose")
        tree = await git.out("write-tree")
    except GitError:
        # Keel's index is only a cache: one that git cannot use (cut short by a crash,
        # naming objects a `git gc --prune=now` removed) is dropped and made again.
        await asyncio.to_thread(_drop_index, workspace)
        added = await git.run("add", "--all", "--verbose")
        tree = await git.out("write-tree")
    index_holds(workspace, tree)
    lines = added.stdout.decode("utf-8", errors="replace").splitlines()
    changed = [line.partition(" ")[2] for line in lines if line.startswith(("add '", "remove '"))]
    return tree, [path[1:-1] if path.startswith("'") else path for path in changed]


def _drop_index(workspace: Workspace) -> None:
    for path in [workspace.index_file, *workspace.keel_dir.glob("sharedindex.*")]:
        path.unlink(missing_ok=True)


async def current_tree(workspace: Workspace) -> str:
    """The tree of the workspace's files now (Keel's index catches up with them)."""
    tree, _ = await _catch_up(workspace)
    return tree


async def snapshot_locked(workspace: Workspace, label: str) -> Snapshot:
    """`snapshot`, for a caller that holds `workspace_lock` already."""
    held = index_tree(workspace)
    latest, (tree, changed) = await both(store.latest(workspace), _catch_up(workspace))
    if tree == latest.tree:
        return latest
    # When Keel's index held the latest snapshot, what `git add` changed is the difference.
    known = changed if held == latest.tree else None
    return await store.record(workspace, tree, label, previous=latest, changed=known)


async def snapshot(workspace: Workspace, label: str = "snapshot") -> Snapshot:
    """Record the workspace's files now. When they are what the latest snapshot holds, no
    new snapshot is made and that one is returned."""
    async with workspace_lock(workspace):
        return await snapshot_locked(workspace, label)


async def list_snapshots(workspace: Workspace) -> list[Snapshot]:
    """The workspace's snapshots, oldest (0, its start) first."""
    return await store.stored(workspace)


def _find(workspace: Workspace, entries: Sequence[Snapshot], snapshot_id: str) -> Snapshot:
    """The snapshot a number (`3`) or 4 or more hex digits of its commit name."""
    wanted = snapshot_id.strip().lower()
    if wanted.isdigit():
        for entry in entries:
            if entry.number == int(wanted):
                return entry
    matches = []
    if len(wanted) >= 4 and all(ch in "0123456789abcdef" for ch in wanted):
        matches = [entry for entry in entries if entry.commit.startswith(wanted)]
    if len(matches) > 1:
        raise SnapshotNotFound(
            f"'{snapshot_id}' names {len(matches)} snapshots of {workspace.name}; give more "
            "characters of the commit, or the snapshot number"
        )
    if not matches:
        raise SnapshotNotFound(
            f"{workspace.name} has no snapshot '{snapshot_id}' (its snapshots: 0 to "
            f"{entries[-1].number}); give a snapshot number or a commit prefix from the list"
        )
    return matches[0]


async def get_snapshot(workspace: Workspace, snapshot_id: str) -> Snapshot:
    """The snapshot named by its number (`3`) or a prefix of its commit (`4f2a9c1`)."""
    return _find(workspace, await store.stored(workspace), snapshot_id)


async def unrecorded_changes(workspace: Workspace) -> list[str]:
    """The files that differ from the latest snapshot: empty when the workspace is clean
    (see the module docstring for what dirty means)."""
    async with workspace_lock(workspace):
        entries, tree = await both(store.stored(workspace), current_tree(workspace))
        return await changed_paths(workspace, entries[-1].tree, tree)


async def tree_patch(
    workspace: Workspace,
    a_tree: str,
    b_tree: str,
    *,
    binary: bool = False,
    paths: Sequence[str] = (),
) -> str:
    """A unified diff between two trees (of `paths` only, when given), with `a/` and `b/`
    prefixes whatever the user's diff settings."""
    flags = ["--binary", "--full-index"] if binary else []
    result = await workspace.repository().run(
        "diff-tree",
        "-r",
        "-p",
        "--no-renames",
        "--no-color",
        "--no-relative",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        *flags,
        a_tree,
        b_tree,
        "--",
        *(f":(literal){path}" for path in paths),
    )
    return result.stdout.decode("utf-8", errors="replace")


async def diff(workspace: Workspace, a: str | None = None, b: str | None = None) -> str:
    """A unified diff from snapshot `a` (default: the latest) to snapshot `b` (default: the
    files now). Empty when they are the same."""
    async with workspace_lock(workspace):
        entries = await store.stored(workspace)
        a_tree = _find(workspace, entries, a).tree if a is not None else entries[-1].tree
        if b is not None:
            b_tree = _find(workspace, entries, b).tree
        else:
            b_tree = await current_tree(workspace)
        return await tree_patch(workspace, a_tree, b_tree)


async def final_patch(workspace: Workspace) -> str:
    """The workspace's whole change, from its start (snapshot 0) to its files now, as a
    patch that `git apply` takes on the commit (or directory) it started from. Binary files
    are included."""
    async with workspace_lock(workspace):
        entries, tree = await both(store.stored(workspace), current_tree(workspace))
        return await tree_patch(workspace, entries[0].tree, tree, binary=True)


def _previous_states(entries: Sequence[Snapshot]) -> list[Snapshot]:
    """The snapshots whose files differ from the latest one's, newest first."""
    return [entry for entry in reversed(entries) if entry.tree != entries[-1].tree]


def _default_target(workspace: Workspace, entries: Sequence[Snapshot], dirty: bool) -> Snapshot:
    if dirty:
        return entries[-1]
    earlier = _previous_states(entries)
    if not earlier:
        raise WorkspaceError(
            f"nothing to roll back: {workspace.name} has the files it started with"
        )
    return earlier[0]


async def rollback(
    workspace: Workspace, snapshot_id: str | None = None, *, force: bool = False
) -> Rollback:
    """Give the workspace's files exactly the state of a snapshot: files added since are
    removed, deleted ones come back; ignored files stay. No branch moves. Without
    `snapshot_id`: back to the latest snapshot when the files have unrecorded changes,
    else undo the last recorded change (the newest snapshot that differs from the latest).

    A dirty workspace (see the module docstring) is refused with `DirtyWorkspace` unless
    `force`; with `force` its changes are first recorded in a safety snapshot, so nothing
    is lost. The rollback itself is recorded as a new snapshot."""

    async with workspace_lock(workspace):
        entries, tree = await both(store.stored(workspace), current_tree(workspace))
        latest = entries[-1]
        dirty = tree != latest.tree
        if snapshot_id is not None:
            target = _find(workspace, entries, snapshot_id)
        else:
            target = _default_target(workspace, entries, dirty)
        if dirty and not force:
            files = await changed_paths(workspace, latest.tree, tree)
            shown = ", ".join(files[:_SHOWN_FILES]) + (" ..." if len(files) > _SHOWN_FILES else "")
            raise DirtyWorkspace(
                f"{workspace.name} has {len(files)} changed file(s) that no snapshot records "
                f"({shown}), made outside Keel since snapshot {latest.id}; roll back with "
                "force (--force) to keep them in a safety snapshot first, or snapshot them",
                files,
            )
        safety = None
        if dirty:
            safety = await store.record(
                workspace, tree, f"before rollback to {target.id}", previous=latest
            )
            latest = safety
        files = await restore_tree(workspace, target.tree, tree)
        if not files:
            return Rollback(restored=target, snapshot=latest, safety=safety, files=())
        done = await store.record(
            workspace, target.tree, f"rollback to {target.id}", previous=latest, changed=files
        )
        return Rollback(restored=target, snapshot=done, safety=safety, files=tuple(files))
