"""Confinement of tool paths to the session's workspace.

A path is taken relative to the workspace; an absolute path, a `..` that climbs out, or a
symbolic link that leads outside is refused with a `ToolError` naming the path.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from keel.tools.base import ToolError


def resolve_inside(workspace: Path, raw: str) -> Path:
    """The real path of `raw` inside `workspace`; refuse anything that leads outside."""
    if not raw or not raw.strip():
        raise ToolError("the path is empty; give a path relative to the workspace, such as '.'")
    pure = PurePosixPath(raw)
    if pure.is_absolute() or Path(raw).is_absolute():
        raise ToolError(f"'{raw}' is an absolute path; give a path relative to the workspace root")
    root = workspace.resolve()
    candidate = (root / raw).resolve()
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"'{raw}' leads outside the workspace; paths must stay inside it")
    return candidate


def relative(workspace: Path, path: Path) -> str:
    root = workspace.resolve()
    return "." if path == root else str(path.relative_to(root))
