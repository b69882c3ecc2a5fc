"""Real git repositories for the workspace tests, and what a user would see of theirs.

Git runs here with a fixed identity and without the caller's `GIT_*` variables, so the
tests depend on nothing of the machine's git configuration.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "User",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "User",
    "GIT_COMMITTER_EMAIL": "user@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, input=input, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A repository on branch `main` with `files` in its first commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write(path, files)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def tree_files(root: Path) -> dict[str, str]:
    """Every file under `root` (not `.git`) with its content, symbolic links as `-> target`."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative == ".git" or relative.startswith(".git/"):
            continue
        if path.is_symlink():
            found[relative] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[relative] = path.read_text(errors="replace")
    return found


def committed_files(repo: Path, commit: str) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", commit).split()


def refs(repo: Path, prefix: str) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", prefix).split()


@dataclass(frozen=True)
class UserState:
    """What the user has of their repository: branch, HEAD, index, status, files."""

    branch: str
    head: str
    index_sha256: str
    status: str
    files: dict[str, str]


def user_state(repo: Path) -> UserState:
    return UserState(
        branch=git(repo, "symbolic-ref", "HEAD").strip(),
        head=git(repo, "rev-parse", "HEAD").strip(),
        index_sha256=hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        status=git(repo, "--no-optional-locks", "status", "--porcelain"),
        files=tree_files(repo),
    )
