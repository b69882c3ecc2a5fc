"""Removing what Keel made in a repository: worktrees, and the branches and refs of a
session. Nothing else is ever deleted: a branch that a worktree outside Keel's home has
checked out (a user looking at `keel/<session>`) is kept.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from keel.workspace.git import Git
from keel.workspace.layout import Layout


async def remove_worktree(layout: Layout, repo: Git, root: Path) -> None:
    """Remove a worktree Keel made (under its home), changed files and all."""
    if await asyncio.to_thread((root / ".git").is_file):
        await repo.run("worktree", "remove", "--force", "--force", str(root), ok=(0, 128))
    if await asyncio.to_thread(root.exists):
        await asyncio.to_thread(layout.remove, root)
    await repo.run("worktree", "prune")


async def delete_refs(repo: Git, refs: list[str]) -> None:
    """Delete refs in one transaction; refs that do not exist are no error."""
    if refs:
        commands = "".join(f"delete {ref}\n" for ref in refs)
        await repo.run("update-ref", "--stdin", input=commands.encode())


async def delete_session_refs(layout: Layout, repo: Git, session_id: str) -> None:
    """Delete branches `keel/<session>` and `keel/<session>.*` and refs
    `refs/keel/<session>/*`."""
    listing, worktrees = await asyncio.gather(
        repo.out(
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads/keel/",
            f"refs/keel/{session_id}/",
        ),
        repo.out("worktree", "list", "--porcelain"),
    )
    name = re.escape(session_id)
    mine = re.compile(rf"^refs/(heads/keel/{name}(\..+)?|keel/{name}/.+)$")
    kept = _checked_out_outside(layout, worktrees)
    await delete_refs(
        repo, [ref for ref in listing.splitlines() if mine.match(ref) and ref not in kept]
    )


def _checked_out_outside(layout: Layout, worktrees: str) -> set[str]:
    """Branches checked out by worktrees that are not Keel's (`git worktree list
    --porcelain` output)."""
    found: set[str] = set()
    for block in worktrees.split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in block.splitlines())
        path = Path(fields.get("worktree", ""))
        if "branch" in fields and layout.worktrees not in path.parents:
            found.add(fields["branch"])
    return found
