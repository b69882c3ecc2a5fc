"""What Keel reads of a directory the user names: which git repository holds it, the
changes the user has not committed there (reported, never touched), and the git directory
of a worktree.

This module only reads; it must never write to the user's repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keel.workspace.errors import GitError, WorkspaceError
from keel.workspace.git import Git

_SHOWN_FILES = 5


@dataclass(frozen=True, slots=True)
class Repository:
    top: Path
    git_dir: Path
    common_dir: Path
    prefix: str


async def discover(path: Path) -> Repository | None:
    """The git repository whose working tree holds `path`, or None for a plain directory."""
    result = await Git(cwd=path).run(
        "rev-parse",
        "--is-inside-work-tree",
        "--is-inside-git-dir",
        "--path-format=absolute",
        "--git-common-dir",
        "--absolute-git-dir",
        "--show-toplevel",
        "--show-prefix",
        ok=(0, 128),
    )
    lines = result.text.split("\n")
    if result.code == 0 and len(lines) == 6 and lines[0] == "true":
        return Repository(Path(lines[4]), Path(lines[3]), Path(lines[2]), lines[5])
    if "not a git repository" in result.stderr:
        return None
    if (len(lines) > 1 and lines[1] == "true") or lines[0] == "false":
        raise WorkspaceError(
            f"{path} is inside a git directory or a bare repository, not a working tree; "
            "open the session on the repository's working directory"
        )
    raise GitError(("git", "rev-parse"), result.code, result.stderr, str(path))


def existing_directory(raw: Path) -> Path:
    """`raw` made absolute, with symbolic links resolved; it must be a directory."""
    path = raw.expanduser().resolve()
    if not path.is_dir():
        raise WorkspaceError(f"the workspace {path} is not a directory; give an existing one")
    return path


def worktree_git_dir(worktree: Path) -> Path:
    """The git directory a worktree's `.git` file points to."""
    text = (worktree / ".git").read_text()
    if not text.startswith("gitdir: "):
        raise WorkspaceError(f"{worktree} is not a git worktree ({worktree / '.git'} is odd)")
    return Path(text.removeprefix("gitdir: ").strip())


def _shown(paths: list[str]) -> str:
    more = f" and {len(paths) - _SHOWN_FILES} more" if len(paths) > _SHOWN_FILES else ""
    return ", ".join(paths[:_SHOWN_FILES]) + more


def uncommitted_note(top: Path, status: bytes, head: str, branch: str) -> str | None:
    """What to tell the user about the changes `git status --porcelain=v1 -z` (`status`)
    lists in their tree; None when there are none."""
    changed: list[str] = []
    untracked: list[str] = []
    entries = iter(status.decode("utf-8", errors="replace").split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, name = entry[:2], entry[3:]
        (untracked if code == "??" else changed).append(name)
        if code[0] in "RC":
            next(entries, None)  # the rename's source path
    if not changed and not untracked:
        return None
    parts = []
    if changed:
        parts.append(f"{len(changed)} changed ({_shown(changed)})")
    if untracked:
        parts.append(f"{len(untracked)} untracked ({_shown(untracked)})")
    return (
        f"{top} has uncommitted changes: {' and '.join(parts)}. They are left as they are and "
        f"are not in the session's worktree, which starts from {head[:10]} ({branch}); "
        "commit them first if the session should see them"
    )
