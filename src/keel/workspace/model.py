"""The values workspaces hand out: a `Workspace`, a `Snapshot`, a `Rollback`, a
`MergeResult`. Plain frozen data; the operations live in `worktrees` and `snapshots`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath

from keel.workspace.errors import PathOutsideWorkspace, WorkspaceError
from keel.workspace.git import Git

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_id(kind: str, value: str) -> str:
    """Session and task ids name branches, refs and directories: keep them plain."""
    if not _ID.match(value):
        raise WorkspaceError(
            f"{kind} id '{value}' cannot name a workspace: use letters, digits, '_' and '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return value


class WorkspaceKind(StrEnum):
    WORKTREE = "worktree"
    """A git worktree Keel created under its home: a session's on a repository, or a
    sub-task's."""
    DIRECTORY = "directory"
    """The user's own plain directory (not a git repository); snapshots go to a shadow git
    directory under Keel's home, and the directory gets no `.git`."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where one session (or one sub-task of it) changes files."""

    session_id: str
    task_id: str | None
    kind: WorkspaceKind
    root: Path
    """The top of the files Keel snapshots: the worktree, or the plain directory."""
    path: Path
    """Where tools work: `root`, or the subdirectory of it the session was opened on."""
    git_dir: Path
    """The git directory of `root`: the worktree's own, or the shadow directory."""
    common_dir: Path
    """The repository all branches and refs live in: the user's `.git`, or the shadow."""
    source: Path
    """What the session was opened on: the repository's top directory or the plain one."""
    branch: str | None
    """`keel/<session>` or `keel/<session>.<task>`; None for a plain directory."""
    keel_dir: Path
    """Keel's private git directory for this workspace, under Keel's home: it holds Keel's
    snapshot index (kept between snapshots) and shares the repository's objects and refs
    through its `commondir` file."""
    notes: tuple[str, ...] = ()
    """What the user should know: uncommitted changes left out, sharing, and so on."""
    parent: Workspace | None = None

    @property
    def index_file(self) -> Path:
        """Keel's snapshot index: never the repository's or the worktree's own."""
        return self.keel_dir / "index"

    @property
    def ref_prefix(self) -> str:
        if self.task_id is None:
            return f"refs/keel/{self.session_id}/"
        return f"refs/keel/{self.session_id}/tasks/{self.task_id}/"

    @property
    def name(self) -> str:
        if self.task_id is None:
            return f"session {self.session_id}"
        return f"task {self.task_id} of session {self.session_id}"

    def git(self, *, keel_index: bool = False) -> Git:
        """Git on this workspace's files: with Keel's snapshot index (in Keel's private git
        directory, as a split index, so each write rewrites only what changed), or with
        the worktree's own index (the one its branch is committed from)."""
        if keel_index:
            return Git(
                cwd=self.root,
                git_dir=self.keel_dir,
                work_tree=self.root,
                config=("core.splitIndex=true", "splitIndex.sharedIndexExpire=now"),
            )
        return Git(cwd=self.root, git_dir=self.git_dir, work_tree=self.root)

    def repository(self) -> Git:
        """Git on the repository alone (refs, branches, worktrees), never on any files."""
        return Git(cwd=self.common_dir, git_dir=self.common_dir)

    def resolve(self, raw: str) -> Path:
        """The real path of `raw` (relative to `path`) inside this workspace; an absolute
        path, a `..` that climbs out, or a symbolic link that leads outside is refused."""
        if not raw.strip():
            raise PathOutsideWorkspace("the path is empty; give a path relative to the workspace")
        if PurePosixPath(raw).is_absolute() or Path(raw).is_absolute():
            raise PathOutsideWorkspace(
                f"'{raw}' is an absolute path; give a path relative to the workspace {self.path}"
            )
        base = self.path.resolve()
        candidate = (base / raw).resolve()
        if candidate != base and base not in candidate.parents:
            raise PathOutsideWorkspace(
                f"'{raw}' leads outside the workspace {self.path}; paths must stay inside it"
            )
        return candidate


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The full state of a workspace's files at one moment, as a commit on
    `refs/keel/<session>/[tasks/<task>/]snapshots/<number>`."""

    number: int
    commit: str
    tree: str
    label: str
    created_at: datetime
    files_changed: int
    """Files that differ from the snapshot before it."""

    @property
    def id(self) -> str:
        return str(self.number)

    @property
    def short(self) -> str:
        return self.commit[:10]


@dataclass(frozen=True, slots=True)
class Rollback:
    restored: Snapshot
    """The snapshot whose files the workspace now has."""
    snapshot: Snapshot
    """The snapshot that records the rollback (the workspace's latest now)."""
    safety: Snapshot | None
    """The snapshot of the changes that were not recorded before, if there were any."""
    files: tuple[str, ...]
    """The files the rollback wrote or removed."""


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What merging a sub-task's worktree back into its parent did."""

    task_id: str
    merged: bool
    files: tuple[str, ...]
    """Merged: the parent's files the merge changed. Not merged: the conflicting files."""
    snapshot: Snapshot | None
    """Merged: the parent's snapshot that records the merge (its second parent is the
    task's commit)."""
    task_commit: str
    conflict: str = ""
    """Not merged: git's messages, then a diff from the parent's files to the merge with
    conflict markers: the artifact to block the parent task with."""

    @property
    def conflicted(self) -> bool:
        return not self.merged
