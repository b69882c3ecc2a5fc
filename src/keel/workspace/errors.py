"""The errors of workspaces: worktrees, snapshots and rollback.

Each is a `KeelError` a caller can act on; its message names the workspace or the thing
that failed and says what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.errors import KeelError, NotFound


class WorkspaceError(KeelError):
    """A workspace cannot be opened, changed or cleaned up as asked."""


class GitError(WorkspaceError):
    """A git command failed; `command` and `stderr` say which and why."""

    def __init__(self, command: Sequence[str], code: int | None, stderr: str, cwd: str) -> None:
        self.command = list(command)
        self.code = code
        self.stderr = stderr.strip()
        shown = " ".join(self.command)
        reason = "; ".join(line for line in self.stderr.splitlines()[:6] if line.strip())
        status = f"exit {code}" if code is not None else "could not start"
        super().__init__(f"`{shown}` failed ({status}) in {cwd}: {reason or 'no message'}")


class WorkspaceNotFound(NotFound, WorkspaceError):
    """A session or task has no workspace (yet, or any more)."""


class SnapshotNotFound(NotFound, WorkspaceError):
    """A snapshot id that names no snapshot of the workspace."""


class PathOutsideWorkspace(WorkspaceError):
    """A path that leads outside the workspace: absolute, `..`, or a symbolic link."""


class DirtyWorkspace(WorkspaceError):
    """The workspace has changes that no snapshot records; `files` names them."""

    def __init__(self, message: str, files: Sequence[str]) -> None:
        self.files = list(files)
        super().__init__(message)
