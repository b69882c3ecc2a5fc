"""The shadow git directory of a plain directory: where the snapshots of a directory that
is not a git repository live, under Keel's home, so the directory itself gets no `.git`.

One shadow per directory (named by a hash of its path), shared by the sessions working in
that directory; each session's refs are its own (`refs/keel/<session>/`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from keel.workspace.git import Git
from keel.workspace.layout import Layout
from keel.workspace.model import Workspace


def describe_shadow(shadow: Path, directory: Path, home: Path) -> None:
    """Name the directory the shadow belongs to, and keep Keel's home out of snapshots
    when it is inside the directory (the default `./.keel` often is)."""
    (shadow / "keel-directory").write_text(f"{directory}\n")
    exclude = shadow / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Keel's own files are never part of a snapshot."]
    if directory in home.parents:
        lines.append(f"/{home.relative_to(directory).as_posix()}/")
    exclude.write_text("\n".join(lines) + "\n")


async def sessions_sharing(workspace: Workspace) -> list[str]:
    """The other sessions with snapshots of the same plain directory."""
    refs = await workspace.repository().out("for-each-ref", "--format=%(refname)", "refs/keel/")
    found = {ref.split("/")[2] for ref in refs.splitlines() if ref.count("/") >= 3}
    return sorted(found - {workspace.session_id})


async def drop_unused_shadow(layout: Layout, repo: Git, shadow: Path) -> None:
    """Delete the shadow once no session has snapshots in it."""
    left = await repo.out("for-each-ref", "--count=1", "--format=%(refname)", "refs/keel/")
    if not left:
        await asyncio.to_thread(layout.remove, shadow)
