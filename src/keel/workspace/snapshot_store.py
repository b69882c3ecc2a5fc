"""How snapshots are stored: each is a commit of the workspace's files on
`refs/keel/<session>/[tasks/<task>/]snapshots/<number>`, its message the label with
`Keel-Snapshot: <number>` and `Keel-Files-Changed: <count>` trailers, its first parent
the snapshot before. Reading them all back takes one `git for-each-ref`.

A new snapshot's ref is written as a loose ref file (lock file, then rename, as git's
files backend does), which saves starting `git update-ref`; a repository that keeps its
refs in a reftable gets `git update-ref`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from keel.workspace.errors import SnapshotNotFound, WorkspaceError
from keel.workspace.model import Snapshot, Workspace
from keel.workspace.trees import changed_paths

_TRAILER_NUMBER = "Keel-Snapshot"
_TRAILER_FILES = "Keel-Files-Changed"
_FORMAT = "%(objectname)%00%(tree)%00%(committerdate:unix)%00%(contents)%1e"
# The latest snapshot of each workspace (by its index file) as this process last saw it:
# saves listing the refs before each snapshot, and is checked before it is trusted.
_latest_known: dict[str, Snapshot] = {}


def _label(text: str) -> str:
    first = " ".join(text.strip().splitlines()[:1]).strip()
    return "".join(ch for ch in first if ch.isprintable())[:200] or "snapshot"


def _parse(record: str) -> Snapshot | None:
    fields = record.lstrip("\n").split("\0", 3)
    if len(fields) != 4:
        return None
    commit, tree, when, contents = fields
    trailers: dict[str, str] = {}
    for line in contents.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in (_TRAILER_NUMBER, _TRAILER_FILES):
            trailers[key] = value.strip()
    number, files = trailers.get(_TRAILER_NUMBER, ""), trailers.get(_TRAILER_FILES, "0")
    if not number.isdigit():
        return None
    return Snapshot(
        number=int(number),
        commit=commit,
        tree=tree,
        label=contents.split("\n", 1)[0],
        created_at=datetime.fromtimestamp(int(when or 0), UTC),
        files_changed=int(files) if files.isdigit() else 0,
    )


async def stored(workspace: Workspace) -> list[Snapshot]:
    """The workspace's snapshots, oldest first; `SnapshotNotFound` when it has none."""
    listing = await workspace.repository().out(
        "for-each-ref", f"--format={_FORMAT}", f"{workspace.ref_prefix}snapshots/"
    )
    found = (_parse(record) for record in listing.split("\x1e"))
    snapshots = sorted((snap for snap in found if snap is not None), key=lambda s: s.number)
    if not snapshots:
        raise SnapshotNotFound(
            f"{workspace.name} has no snapshots: its workspace was not opened by Keel, "
            "or was closed"
        )
    _latest_known[str(workspace.index_file)] = snapshots[-1]
    return snapshots


def _loose_ref(workspace: Workspace, number: int) -> Path:
    return workspace.common_dir / f"{workspace.ref_prefix}snapshots/{number}"


def _still_latest(workspace: Workspace, snap: Snapshot) -> bool:
    """Whether `snap`'s ref is still a loose ref file naming its commit and no snapshot came
    after it. Anything else (packed refs, another ref store, another process's snapshot)
    says no, and the refs are listed instead."""
    try:
        current = _loose_ref(workspace, snap.number).read_text().strip()
    except OSError:
        return False
    return current == snap.commit and not _loose_ref(workspace, snap.number + 1).exists()


async def latest(workspace: Workspace) -> Snapshot:
    """The latest snapshot; the one this process recorded last, when it still is."""
    known = _latest_known.get(str(workspace.index_file))
    if known is not None and await asyncio.to_thread(_still_latest, workspace, known):
        return known
    return (await stored(workspace))[-1]


def _create_loose_ref(common_dir: Path, ref: str, commit: str) -> bool:
    """Create a new ref as a loose ref file, the way git's files backend does (`<ref>.lock`
    made exclusively, written, renamed into place): a snapshot's ref is always new, and
    this saves starting `git update-ref` for it. False when the repository keeps its refs
    another way (reftable), for the caller to use `git update-ref`."""
    if (common_dir / "reftable").exists():
        return False
    path = common_dir / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f"{path.name}.lock")
    try:
        descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise WorkspaceError(f"{ref} is being written by another process; try again") from None
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{commit}\n")
        if path.exists():
            raise WorkspaceError(f"{ref} exists already: another process took its number")
        os.replace(lock, path)
    finally:
        lock.unlink(missing_ok=True)
    return True


async def record(
    workspace: Workspace,
    tree: str,
    label: str,
    *,
    previous: Snapshot | None,
    parents: Sequence[str] = (),
    changed: Sequence[str] | None = None,
) -> Snapshot:
    """Store `tree` as the next snapshot; its commit's first parent is the previous
    snapshot (or, for snapshot 0, `parents`), so the snapshots form one history.
    `changed`, when the caller knows them, are the files that differ from the previous."""
    number = previous.number + 1 if previous is not None else 0
    label = _label(label)
    if changed is None:
        changed = await changed_paths(workspace, previous.tree, tree) if previous else []
    message = (
        f"{label}\n\n{_TRAILER_NUMBER}: {number}\n{_TRAILER_FILES}: {len(changed)}\n"
        f"Keel-Session: {workspace.session_id}\n"
        + (f"Keel-Task: {workspace.task_id}\n" if workspace.task_id else "")
    )
    all_parents = [previous.commit] if previous is not None else []
    all_parents += [parent for parent in parents if parent not in all_parents]
    flags = [flag for parent in all_parents for flag in ("-p", parent)]
    git = workspace.repository()

    commit = await git.out("commit-tree", tree, *flags, "-F", "-", input=message.encode())
    ref = f"{workspace.ref_prefix}snapshots/{number}"
    if not await asyncio.to_thread(_create_loose_ref, workspace.common_dir, ref, commit):
        # The empty old value makes git refuse if another process took the number.
        await git.run("update-ref", ref, commit, "")
    created = Snapshot(
        number=number,
        commit=commit,
        tree=tree,
        label=label,
        created_at=datetime.now(UTC).replace(microsecond=0),
        files_changed=len(changed),
    )
    _latest_known[str(workspace.index_file)] = created
    return created
