"""Merging a sub-task's branch back into its parent's files.

The merge is computed by `git merge-tree --write-tree` from the parent's files (snapshotted
first) and the task's commit, in the object store only: nothing of the parent is touched
until the merge is known to be clean. A conflict is returned, never written; a clean
merge is applied to the parent's files under the parent's workspace lock, touching
nothing else: only the files the merge changes are written. The parent's snapshot of a
merge is labelled `merge task <id>`: that is how a merge is found again after a crash cut
short whatever was to record it (`recorded_merge`).
"""

from __future__ import annotations

from keel.workspace import snapshot_store as store
from keel.workspace import snapshots
from keel.workspace.errors import WorkspaceError
from keel.workspace.model import MergeResult, Workspace
from keel.workspace.state import workspace_lock
from keel.workspace.trees import changed_paths, restore_tree


def merge_label(task_id: str) -> str:
    """The label of the parent's snapshot that records merging the task: how a merge that
    already happened is found again (`recorded_merge`)."""
    return f"merge task {task_id}"


def _messages(fields: list[str]) -> list[str]:
    """git's informational messages from `merge-tree -z`: for each, the number of paths,
    the paths, a type, and the message."""
    found: list[str] = []
    position = 0
    while position < len(fields) and fields[position].isdigit():
        position += 1 + int(fields[position]) + 1
        if position < len(fields):
            found.append(fields[position].strip())
        position += 1
    return found


async def merge_into_parent(child: Workspace, task_commit: str) -> MergeResult:
    """Merge `task_commit` (the head of the task's branch) into `child.parent`'s files."""
    parent = child.parent
    task_id = child.task_id
    if parent is None or task_id is None:
        raise WorkspaceError(f"{child.name} is not a sub-task's workspace; nothing to merge")
    async with workspace_lock(parent):
        before = await snapshots.snapshot_locked(parent, f"before merging task {task_id}")
        result = await parent.repository().run(
            "merge-tree",
            "--write-tree",
            "-z",
            "--name-only",
            before.commit,
            task_commit,
            ok=(0, 1),
        )
        fields = result.stdout.decode("utf-8", errors="surrogateescape").split("\0")
        tree = fields[0]
        end = fields.index("", 1) if "" in fields[1:] else len(fields)
        conflicts = tuple(dict.fromkeys(fields[1:end]))
        if result.code == 1:
            messages = "\n".join(_messages(fields[end + 1 :]))
            patch = await snapshots.tree_patch(parent, before.tree, tree, paths=conflicts)
            # merge-tree names each side by the commit it was given; name them for people.
            patch = patch.replace(f"<<<<<<< {before.commit}", f"<<<<<<< {parent.name}")
            patch = patch.replace(f">>>>>>> {task_commit}", f">>>>>>> task {task_id}")
            return MergeResult(
                task_id=task_id,
                merged=False,
                files=conflicts,
                snapshot=None,
                task_commit=task_commit,
                conflict=f"{messages}\n\n{patch}" if messages else patch,
            )
        files = await restore_tree(parent, tree, before.tree)
        if not files:
            return MergeResult(task_id, True, (), before, task_commit)
        merged = await store.record(
            parent,
            tree,
            merge_label(task_id),
            previous=before,
            parents=[task_commit],
            changed=files,
        )
        return MergeResult(task_id, True, tuple(files), merged, task_commit)


async def recorded_merge(parent: Workspace, task_id: str) -> MergeResult | None:
    """The merge of the task into `parent` that a snapshot of the parent records, or None
    when there is none (never merged, or the merge changed no file of the parent)."""
    entries = await snapshots.list_snapshots(parent)
    label = merge_label(task_id)
    found = next((entry for entry in reversed(entries) if entry.label == label), None)
    if found is None:
        return None
    previous = next(entry for entry in entries if entry.number == found.number - 1)
    files = await changed_paths(parent, previous.tree, found.tree)
    task_commit = await parent.repository().out("rev-parse", f"{found.commit}^2")
    return MergeResult(task_id, True, tuple(files), found, task_commit)
