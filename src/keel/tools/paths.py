"""Confinement of tool paths to the session's workspace.

A path is taken relative to the workspace; an absolute path, a `..` that climbs out, or a
symbolic link that leads outside is refused with a `ToolError` naming the path. Only the
path's own components are looked at on disk (the workspace root is resolved once), so a
check costs a few `lstat` calls, not one per directory above the workspace.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path, PurePosixPath

from keel.tools.base import ToolError

_MAX_LINKS = 40


@functools.lru_cache(maxsize=256)
def _real_root(workspace: str) -> str:
    return os.path.realpath(workspace)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _walk(root: str, start: str, parts: tuple[str, ...], raw: str, links: int = 0) -> str:
    current = start
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current) if current != "/" else current
            continue
        following = os.path.join(current, part)
        if os.path.islink(following):
            if links >= _MAX_LINKS:
                raise ToolError(f"'{raw}' has too many symbolic links")
            target = os.readlink(following)
            base = "/" if os.path.isabs(target) else current
            current = _walk(root, base, PurePosixPath(target).parts, raw, links + 1)
            if not _inside(root, current):
                break
            continue
        current = following
    return os.path.normpath(current)


def resolve_inside(workspace: Path, raw: str) -> Path:
    """The real path of `raw` inside `workspace`; refuse anything that leads outside."""
    if not raw or not raw.strip():
        raise ToolError("the path is empty; give a path relative to the workspace, such as '.'")
    pure = PurePosixPath(raw)
    if pure.is_absolute() or Path(raw).is_absolute():
        raise ToolError(f"'{raw}' is an absolute path; give a path relative to the workspace root")
    root = _real_root(str(workspace))
    candidate = _walk(root, root, pure.parts, raw)
    if not _inside(root, candidate):
        raise ToolError(f"'{raw}' leads outside the workspace; paths must stay inside it")
    return Path(candidate)


def workspace_root(workspace: Path) -> Path:
    """The workspace's real path (resolved once per workspace)."""
    return Path(_real_root(str(workspace)))


def relative(workspace: Path, path: Path) -> str:
    root = workspace_root(workspace)
    return "." if path == root else str(path.relative_to(root))
