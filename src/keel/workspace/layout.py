"""Where Keel keeps workspace state under its home, and the record of each session's
workspace. Every path Keel creates or deletes for workspaces is named here:

    <home>/worktrees/<repo-hash>/.repo              the repository's git directory
    <home>/worktrees/<repo-hash>/<session>/         a session's worktree
    <home>/worktrees/<repo-hash>/<session>.<task>/  a sub-task's worktree (a sibling: a
                                                    worktree inside another would show up
                                                    in its files)
    <home>/shadow/<dir-hash>/                       the shadow git directory of a plain one
    <home>/workspaces/<session>/workspace.json      what the session's workspace is
    <home>/workspaces/<session>/git/                Keel's private git directory for it:
                                                    its snapshot index, and `commondir`
                                                    naming the repository's
    <home>/workspaces/<session>/tasks/<task>.git/   ... and for each sub-task
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from keel.workspace.model import WorkspaceKind

RECORD_FILE = "workspace.json"
REPO_FILE = ".repo"


def digest(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    """A session's workspace as written when it was opened; enough to find it again, and
    to clean it up, from the session id alone."""

    kind: WorkspaceKind
    requested: str
    """The directory the session was opened on (resolved)."""
    source: str
    """The repository's top directory, or the plain directory."""
    root: str
    subdir: str
    common_dir: str
    branch: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @staticmethod
    def from_json(text: str) -> WorkspaceRecord:
        data = json.loads(text)
        data["kind"] = WorkspaceKind(data["kind"])
        return WorkspaceRecord(**data)


@dataclass(frozen=True, slots=True)
class Layout:
    home: Path

    @property
    def worktrees(self) -> Path:
        return self.home / "worktrees"

    @property
    def states(self) -> Path:
        return self.home / "workspaces"

    def worktrees_of(self, common_dir: Path) -> Path:
        return self.worktrees / digest(common_dir)

    def worktree(self, common_dir: Path, session_id: str, task_id: str | None = None) -> Path:
        name = session_id if task_id is None else f"{session_id}.{task_id}"
        return self.worktrees_of(common_dir) / name

    def shadow(self, directory: Path) -> Path:
        return self.home / "shadow" / digest(directory)

    def state(self, session_id: str) -> Path:
        return self.states / session_id

    def keel_dir(self, session_id: str, task_id: str | None = None) -> Path:
        if task_id is None:
            return self.state(session_id) / "git"
        return self.state(session_id) / "tasks" / f"{task_id}.git"

    # Blocking file work; callers run these in a thread.

    def read_record(self, session_id: str) -> WorkspaceRecord | None:
        path = self.state(session_id) / RECORD_FILE
        try:
            return WorkspaceRecord.from_json(path.read_text())
        except FileNotFoundError:
            return None

    def write_record(self, session_id: str, record: WorkspaceRecord) -> None:
        path = self.state(session_id) / RECORD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(record.to_json())
        partial.replace(path)

    def note_repository(self, common_dir: Path) -> None:
        folder = self.worktrees_of(common_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REPO_FILE).write_text(str(common_dir))

    def repositories(self) -> dict[Path, Path]:
        """Each folder of worktrees, with the git directory of its repository."""
        found: dict[Path, Path] = {}
        if not self.worktrees.is_dir():
            return found
        for folder in self.worktrees.iterdir():
            marker = folder / REPO_FILE
            if marker.is_file():
                found[folder] = Path(marker.read_text().strip())
        return found

    def sessions(self) -> set[str]:
        """Every session with workspace state or a worktree under this home."""
        found = {entry.name for entry in self.states.iterdir()} if self.states.is_dir() else set()
        for folder in self.repositories():
            for entry in folder.iterdir():
                if not entry.name.startswith("."):
                    found.add(entry.name.split(".", 1)[0])
        return found

    def worktrees_of_session(self, session_id: str) -> list[tuple[Path, Path]]:
        """(worktree, repository git directory) of each worktree of the session."""
        found = []
        for folder, common_dir in self.repositories().items():
            for entry in folder.iterdir():
                if entry.name == session_id or entry.name.startswith(f"{session_id}."):
                    found.append((entry, common_dir))
        return found

    def make_keel_dir(self, keel_dir: Path, common_dir: Path, head: str | None) -> None:
        """A private git directory that shares `common_dir`'s objects, refs and config
        (like a linked worktree's), for Keel's snapshot index. Its HEAD is never moved;
        git only needs one (`head`, or an unborn branch)."""
        keel_dir.mkdir(parents=True, exist_ok=True)
        (keel_dir / "commondir").write_text(f"{common_dir}\n")
        (keel_dir / "HEAD").write_text(f"{head or 'ref: refs/heads/keel-snapshots'}\n")

    def remove(self, path: Path) -> None:
        """Delete a directory or file Keel made under its home (and nothing else)."""
        if self.home not in path.parents:
            raise ValueError(f"{path} is not under Keel's home {self.home}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
