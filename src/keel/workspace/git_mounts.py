"""What git needs to see, besides the workspace, to work in a sandbox.

A linked worktree (every workspace Keel makes on a repository) has a `.git` *file* that
points into the repository's common git directory (`<repo>/.git/worktrees/<name>`), which
holds the objects, the refs and the worktree's own HEAD and index. A sandbox that binds
only the workspace hides it (bubblewrap's private `/tmp` hides a repository under `/tmp`
even though the rest of the host is visible), and every git command fails with "not a
git repository". The same happens to a workspace that is a subdirectory of a repository:
the top of the worktree, with its `.git`, is outside it.

This module only reads the file system to find those directories; the backends bind them.
"""

from __future__ import annotations

from pathlib import Path

GITDIR_PREFIX = "gitdir: "


def _pointed(base: Path, text: str) -> Path:
    """A path as git writes it in `.git` and `commondir` files: absolute, or relative to
    the directory that holds the file."""
    path = Path(text.strip())
    return (path if path.is_absolute() else base / path).resolve()


def git_mounts(workspace: Path) -> list[Path]:
    """The directories to make visible, read-only, for git to work in `workspace`: the top
    of the worktree that holds it when that is above it, and the git directories a linked
    worktree's `.git` file leads to (its own and the repository's common one). Empty when
    the workspace is in no git worktree, or holds its `.git` directory itself."""
    start = workspace.resolve()
    for top in (start, *start.parents):
        marker = top / ".git"
        if marker.is_dir():
            return [top] if top != start else []
        if not marker.is_file():
            continue
        found = [top] if top != start else []
        try:
            text = marker.read_text(errors="replace")
            if not text.startswith(GITDIR_PREFIX):
                return found
            git_dir = _pointed(top, text.removeprefix(GITDIR_PREFIX))
            common = git_dir
            commondir = git_dir / "commondir"
            if commondir.is_file():
                common = _pointed(git_dir, commondir.read_text(errors="replace"))
        except OSError:
            return found  # unreadable: git will say what is wrong, in the sandbox
        found.append(common)
        if common not in git_dir.parents and git_dir != common:
            found.append(git_dir)
        return [path for path in found if path.is_dir()]
    return []
