"""The workspace manager: a git worktree per session and per writing sub-task, the shadow
git directory of a plain directory, merging a sub-task back, and cleaning up.

A session opened on a git repository works in its own worktree, on branch
`keel/<session>`, made from the repository's HEAD under `<home>/worktrees/` (see
`layout`). A sub-task gets a worktree on `keel/<session>.<task>` (git cannot hold
`keel/<session>/<task>` beside `keel/<session>`), branched from a snapshot of its
parent's files taken at that moment, so it sees the parent's uncommitted work without any
commit on the parent's branch. Merging back is a three-way merge of the task's branch into
the parent's files (`merge`).

The user's branch, index and working files are never touched: Keel reads the user's tree
only with `--no-optional-locks`, and writes only its own branches, its `refs/keel/` refs,
the worktrees' admin entries, and objects.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from keel.workspace import snapshot_store as store
from keel.workspace import snapshots
from keel.workspace.errors import WorkspaceError, WorkspaceNotFound
from keel.workspace.git import Git, require_git
from keel.workspace.layout import Layout, WorkspaceRecord
from keel.workspace.merge import merge_into_parent, recorded_merge
from keel.workspace.model import MergeResult, Workspace, WorkspaceKind, check_id
from keel.workspace.removal import delete_refs, delete_session_refs, remove_worktree
from keel.workspace.repository import (
    Repository,
    discover,
    existing_directory,
    uncommitted_note,
    worktree_git_dir,
)
from keel.workspace.shadow import describe_shadow, drop_unused_shadow, sessions_sharing
from keel.workspace.state import workspace_lock

# Writing the files of a new worktree is mostly waiting on the file system: several
# workers (git's parallel checkout) make it up to twice as fast, even on two cores.
_CHECKOUT_WORKERS = min(16, max(4, 2 * (os.cpu_count() or 1)))


async def _add_worktree(repo: Git, branch: str, root: Path, start: str) -> None:
    checkout = Git(repo.cwd, repo.git_dir, config=(f"checkout.workers={_CHECKOUT_WORKERS}",))
    await checkout.run("worktree", "add", "-q", "-b", branch, str(root), start)


def _copy_index(source: Path, target: Path) -> None:
    """Seed Keel's snapshot index with the one git wrote while checking the worktree out:
    the first snapshot then only compares file times instead of reading every file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


class WorkspaceManager:
    """Opens, finds, merges and removes workspaces; all state lives under `home`."""

    def __init__(self, home: Path) -> None:
        self.home = home.expanduser().resolve()
        self.layout = Layout(self.home)

    # Sessions

    async def open_session(self, session_id: str, path: Path | str) -> Workspace:
        """The session's workspace on `path`: made on first call, the same one after (so a
        resumed session finds its files). A repository gets a worktree; a plain directory
        is used in place, with snapshots in a shadow git directory."""
        check_id("session", session_id)
        await require_git()
        target = await asyncio.to_thread(existing_directory, Path(path))
        record = await asyncio.to_thread(self.layout.read_record, session_id)
        if record is not None:
            if Path(record.requested) != target:
                raise WorkspaceError(
                    f"session {session_id} already works on {record.requested}, not {target}"
                )
            workspace = await asyncio.to_thread(self._from_record, session_id, record)
            if await self._complete(workspace):
                return workspace
            await self.close_session(session_id)  # a half-made workspace: start again
        if target == self.home or self.home in target.parents:
            raise WorkspaceError(
                f"{target} is inside Keel's home {self.home}; open the session on a project "
                "directory"
            )
        repository = await discover(target)
        if repository is None:
            return await self._open_directory(session_id, target)
        return await self._open_worktree(session_id, target, repository)

    async def find_session(self, session_id: str, path: Path | str | None = None) -> Workspace:
        """The session's existing workspace; `WorkspaceNotFound` when it has none. With
        `path`, it must be the one the workspace was opened on."""
        check_id("session", session_id)
        await require_git()
        record = await asyncio.to_thread(self.layout.read_record, session_id)
        if record is None:
            where = f" on {path}" if path is not None else ""
            raise WorkspaceNotFound(
                f"session {session_id} has no workspace{where} under {self.home}: Keel makes "
                "one when the session starts working, and removes it when it is deleted"
            )
        if path is not None and Path(record.requested) != await asyncio.to_thread(
            existing_directory, Path(path)
        ):
            raise WorkspaceError(f"session {session_id} works on {record.requested}, not {path}")
        workspace = await asyncio.to_thread(self._from_record, session_id, record)
        if not await asyncio.to_thread(workspace.root.is_dir):
            raise WorkspaceNotFound(
                f"the workspace of session {session_id} ({workspace.root}) is gone; its "
                f"snapshots are still in {workspace.common_dir} under {workspace.ref_prefix}"
            )
        return workspace

    def _from_record(self, session_id: str, record: WorkspaceRecord) -> Workspace:
        root = Path(record.root)
        common_dir = Path(record.common_dir)
        git_dir = common_dir
        if record.kind is WorkspaceKind.WORKTREE:
            git_dir = common_dir / "worktrees" / root.name
            marker = root / ".git"
            if marker.is_file():
                git_dir = worktree_git_dir(root)
        return Workspace(
            session_id=session_id,
            task_id=None,
            kind=record.kind,
            root=root,
            path=root / record.subdir if record.subdir else root,
            git_dir=git_dir,
            common_dir=common_dir,
            source=Path(record.source),
            branch=record.branch,
            keel_dir=self.layout.keel_dir(session_id),
        )

    async def _complete(self, workspace: Workspace) -> bool:
        """Made to the end: its files are there and its start snapshot is recorded."""
        if not await asyncio.to_thread(workspace.root.is_dir):
            if await self._has_start(workspace):
                raise WorkspaceNotFound(
                    f"the worktree of {workspace.name} ({workspace.root}) was deleted; its "
                    f"snapshots are in {workspace.common_dir} under {workspace.ref_prefix}; "
                    "close the session to clean up"
                )
            return False
        return await self._has_start(workspace)

    async def _has_start(self, workspace: Workspace) -> bool:
        if not await asyncio.to_thread(workspace.common_dir.is_dir):
            return False
        ref = f"{workspace.ref_prefix}snapshots/0"
        result = await workspace.repository().run("rev-parse", "--verify", "-q", ref, ok=(0, 1))
        return result.code == 0

    async def _open_worktree(
        self, session_id: str, target: Path, repository: Repository
    ) -> Workspace:
        user = Git(cwd=repository.top, git_dir=repository.git_dir, work_tree=repository.top)
        head_check = await user.run("rev-parse", "--verify", "-q", "HEAD^{commit}", ok=(0, 1))
        if head_check.code != 0:
            raise WorkspaceError(
                f"the repository {repository.top} has no commit yet; commit once so that the "
                "session's worktree can branch from it"
            )
        head = head_check.text
        root = self.layout.worktree(repository.common_dir, session_id)
        if await asyncio.to_thread(root.exists):
            raise WorkspaceError(
                f"{root} exists but no workspace of session {session_id} is recorded; remove it "
                "(or prune) and try again"
            )
        branch = f"keel/{session_id}"
        record = WorkspaceRecord(
            kind=WorkspaceKind.WORKTREE,
            requested=str(target),
            source=str(repository.top),
            root=str(root),
            subdir=repository.prefix.rstrip("/"),
            common_dir=str(repository.common_dir),
            branch=branch,
        )
        await asyncio.to_thread(self.layout.write_record, session_id, record)
        await asyncio.to_thread(self.layout.note_repository, repository.common_dir)
        repo = Git(cwd=repository.common_dir, git_dir=repository.common_dir)
        status, user_branch, _ = await asyncio.gather(
            user.run(
                "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=normal"
            ),
            user.run("symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)),
            _add_worktree(repo, branch, root, head),
        )
        workspace = await asyncio.to_thread(self._from_record, session_id, record)
        on = user_branch.text or "detached HEAD"
        note = uncommitted_note(repository.top, status.stdout, head, on)
        notes = [note] if note else []
        notes += await self._prepare_worktree(workspace, head)
        return _with_notes(workspace, notes)

    async def _prepare_worktree(
        self, workspace: Workspace, start: str, *, label: str = snapshots.START_LABEL
    ) -> list[str]:
        """Seed Keel's index, make the subdirectory, record snapshot 0 (which marks the
        workspace complete)."""
        notes = []
        await asyncio.to_thread(
            self.layout.make_keel_dir, workspace.keel_dir, workspace.common_dir, start
        )
        await asyncio.to_thread(_copy_index, workspace.git_dir / "index", workspace.index_file)
        if not await asyncio.to_thread(workspace.path.is_dir):
            await asyncio.to_thread(workspace.path.mkdir, parents=True)
            notes.append(
                f"{workspace.path.relative_to(workspace.root)} is not in the commit the "
                "worktree starts from; it starts empty"
            )
        tree = await workspace.repository().out("rev-parse", f"{start}^{{tree}}")
        await store.record(workspace, tree, label, previous=None, parents=[start])
        return notes

    async def _open_directory(self, session_id: str, target: Path) -> Workspace:
        shadow = self.layout.shadow(target)
        record = WorkspaceRecord(
            kind=WorkspaceKind.DIRECTORY,
            requested=str(target),
            source=str(target),
            root=str(target),
            subdir="",
            common_dir=str(shadow),
            branch=None,
        )
        await asyncio.to_thread(self.layout.write_record, session_id, record)
        if not await asyncio.to_thread((shadow / "HEAD").is_file):
            await Git(cwd=self.home).run("init", "-q", "--bare", str(shadow))
        await asyncio.to_thread(describe_shadow, shadow, target, self.home)
        workspace = await asyncio.to_thread(self._from_record, session_id, record)
        others = await sessions_sharing(workspace)
        notes = []
        if others:
            notes.append(
                f"{target} is a plain directory that session(s) {', '.join(others)} also work "
                "in: plain directories are not isolated, so a rollback of one changes the "
                "files of the other"
            )
        await asyncio.to_thread(
            self.layout.make_keel_dir, workspace.keel_dir, workspace.common_dir, None
        )
        tree = await snapshots.current_tree(workspace)
        await store.record(workspace, tree, snapshots.START_LABEL, previous=None)
        return _with_notes(workspace, notes)

    # Sub-tasks

    async def open_task(self, parent: Workspace, task_id: str) -> Workspace:
        """A worktree for a sub-task that writes, on `keel/<session>.<task>`, branched from
        a snapshot of the parent's files now. The same one on a second call."""
        found = await self.find_task(parent, task_id)
        if found is not None:
            return found
        root, branch, keel_dir = self._task_places(parent, task_id)
        await self._remove_task(parent, task_id, root, branch)
        async with workspace_lock(parent):
            base = await snapshots.snapshot_locked(parent, f"before task {task_id}")
        await asyncio.to_thread(self.layout.note_repository, parent.common_dir)
        await _add_worktree(parent.repository(), branch, root, base.commit)
        child = await asyncio.to_thread(self._task, parent, task_id, root, branch, keel_dir)
        notes = await self._prepare_worktree(
            child, base.commit, label=f"start: snapshot {base.id} of {parent.name}"
        )
        return _with_notes(child, notes)

    async def find_task(self, parent: Workspace, task_id: str) -> Workspace | None:
        """The sub-task's worktree when it exists, made to the end; else None."""
        root, branch, keel_dir = self._task_places(parent, task_id)
        if not await asyncio.to_thread((root / ".git").is_file):
            return None
        child = await asyncio.to_thread(self._task, parent, task_id, root, branch, keel_dir)
        return child if await self._has_start(child) else None

    def _task_places(self, parent: Workspace, task_id: str) -> tuple[Path, str, Path]:
        """Where a sub-task's worktree lives, its branch, and Keel's git directory for it:
        all named by the task's id, so a resumed task finds its worktree again."""
        check_id("task", task_id)
        session_id = parent.session_id
        root = self.layout.worktree(parent.common_dir, session_id, task_id)
        return root, f"keel/{session_id}.{task_id}", self.layout.keel_dir(session_id, task_id)

    def _task(
        self, parent: Workspace, task_id: str, root: Path, branch: str, keel_dir: Path
    ) -> Workspace:
        marker = root / ".git"
        git_dir = worktree_git_dir(root) if marker.is_file() else parent.common_dir
        return Workspace(
            session_id=parent.session_id,
            task_id=task_id,
            kind=WorkspaceKind.WORKTREE,
            root=root,
            path=root / parent.path.relative_to(parent.root),
            git_dir=git_dir,
            common_dir=parent.common_dir,
            source=parent.source,
            branch=branch,
            keel_dir=keel_dir,
            parent=parent,
        )

    async def commit_changes(self, workspace: Workspace, message: str) -> str:
        """Commit the workspace's files (all that git does not ignore) to its branch, with
        the worktree's own index; the branch's head, new or unchanged, is returned."""
        if workspace.branch is None:
            raise WorkspaceError(
                f"{workspace.name} works in a plain directory and has no branch to commit to"
            )
        git = workspace.git()
        await git.run("add", "--all")
        tree, (head, head_tree) = await asyncio.gather(git.out("write-tree"), _head(git))
        if tree == head_tree:
            return head
        commit = await git.out("commit-tree", tree, "-p", head, "-F", "-", input=message.encode())
        ref = f"refs/heads/{workspace.branch}"
        await git.run("update-ref", "-m", f"keel: {message}", ref, commit, head)
        return commit

    async def merge_back(self, child: Workspace, *, remove: bool = True) -> MergeResult:
        """Merge a sub-task's work into its parent's files. Clean: the parent's files get
        the merge, recorded as a parent snapshot, and (with `remove`) the task's worktree
        and branch go. Conflict: nothing of the parent changes; the result carries the
        conflicting files and the conflict text, and the task's worktree stays."""
        if child.parent is None or child.task_id is None:
            raise WorkspaceError(f"{child.name} is not a sub-task's workspace; nothing to merge")
        task_commit = await self.commit_changes(child, f"task {child.task_id}")
        result = await merge_into_parent(child, task_commit)
        if result.merged and remove:
            await self.discard_task(child)
        return result

    async def merge_task(self, parent: Workspace, task_id: str) -> MergeResult:
        """`merge_back` the task's worktree into `parent`, once: when an earlier call was
        cut short after its merge was recorded, that merge is returned (and what is left
        of the worktree removed) instead of a second one. A task without a worktree (it
        has none, or a merge that changed nothing removed it) merges nothing."""
        recorded = await recorded_merge(parent, task_id)
        if recorded is not None:
            root, branch, _ = self._task_places(parent, task_id)
            await self._remove_task(parent, task_id, root, branch)
            return recorded
        child = await self.find_task(parent, task_id)
        if child is None:
            return MergeResult(task_id, True, (), None, "")
        return await self.merge_back(child)

    async def discard_task(self, child: Workspace) -> None:
        """Remove a sub-task's worktree, branch and snapshot refs without merging."""
        if child.parent is None or child.task_id is None or child.branch is None:
            raise WorkspaceError(f"{child.name} is not a sub-task's workspace")
        await self._remove_task(child.parent, child.task_id, child.root, child.branch)

    async def _remove_task(self, parent: Workspace, task_id: str, root: Path, branch: str) -> None:
        repo = parent.repository()
        await remove_worktree(self.layout, repo, root)
        prefix = f"refs/keel/{parent.session_id}/tasks/{task_id}/"
        refs = await repo.out("for-each-ref", "--format=%(refname)", prefix)
        await delete_refs(repo, [f"refs/heads/{branch}", *refs.splitlines()])
        keel_dir = self.layout.keel_dir(parent.session_id, task_id)
        await asyncio.to_thread(self.layout.remove, keel_dir)

    # Lifecycle

    async def close_session(self, session_id: str) -> None:
        """Remove everything of the session: its worktrees (and its sub-tasks'), branches
        `keel/<session>` and `keel/<session>.*`, refs `refs/keel/<session>/`, Keel's state.
        A plain directory keeps its files; only its snapshots go."""
        check_id("session", session_id)
        record = await asyncio.to_thread(self.layout.read_record, session_id)
        worktrees = await asyncio.to_thread(self.layout.worktrees_of_session, session_id)
        repositories = {common_dir for _, common_dir in worktrees}
        if record is not None:
            repositories.add(Path(record.common_dir))
        for common_dir in sorted(repositories):
            exists = await asyncio.to_thread(common_dir.is_dir)
            repo = Git(cwd=common_dir, git_dir=common_dir) if exists else None
            for root, owner in worktrees:
                if owner != common_dir:
                    continue
                if repo is not None:
                    await remove_worktree(self.layout, repo, root)
                else:
                    await asyncio.to_thread(self.layout.remove, root)
            if repo is not None:
                await delete_session_refs(self.layout, repo, session_id)
                if self.home / "shadow" in common_dir.parents:
                    await drop_unused_shadow(self.layout, repo, common_dir)
        await asyncio.to_thread(self.layout.remove, self.layout.state(session_id))

    async def prune(self, live_session_ids: Iterable[str]) -> list[str]:
        """Close every session this home has a workspace for that is not in
        `live_session_ids`, and let git forget worktrees deleted by hand. Returns the
        sessions closed."""
        live = set(live_session_ids)
        known = await asyncio.to_thread(self.layout.sessions)
        gone = sorted(known - live)
        for session_id in gone:
            await self.close_session(session_id)
        for common_dir in (await asyncio.to_thread(self.layout.repositories)).values():
            if await asyncio.to_thread(common_dir.is_dir):
                await Git(cwd=common_dir, git_dir=common_dir).run("worktree", "prune")
        return gone


async def _head(git: Git) -> tuple[str, str]:
    head, tree = (await git.out("rev-parse", "HEAD", "HEAD^{tree}")).split("\n")
    return head, tree


def _with_notes(workspace: Workspace, notes: list[str]) -> Workspace:
    return replace(workspace, notes=tuple(notes)) if notes else workspace
