"""Trees of a workspace's files: which paths differ between two, and making the files
exactly one of them, writing or removing only the files that differ (and the directories
that removal empties); ignored files stay. Rollback and merging back both end here, under
the workspace's lock.
"""

from __future__ import annotations

from keel.workspace.model import Workspace
from keel.workspace.state import index_holds


async def changed_paths(workspace: Workspace, a_tree: str, b_tree: str) -> list[str]:
    """The paths whose content, mode or presence differs between two trees."""
    if a_tree == b_tree:
        return []
    listing = await workspace.repository().out(
        "diff-tree", "-r", "-z", "--name-only", "--no-renames", a_tree, b_tree
    )
    return [path for path in listing.split("\0") if path]


async def restore_tree(workspace: Workspace, tree: str, current: str) -> list[str]:
    """Make the workspace's files, which are `current`, exactly `tree`, and return the
    paths written or removed. Keel's index must hold `current` (the caller has just
    brought it up to the files); it holds `tree` afterwards."""
    paths = await changed_paths(workspace, current, tree)
    if not paths:
        return []
    index_holds(workspace, None)
    # `restore` without overlay also removes the paths `tree` does not have.
    await workspace.git(keel_index=True).run(
        "restore",
        f"--source={tree}",
        "--staged",
        "--worktree",
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        input="".join(f":(literal){path}\0" for path in paths).encode(),
    )
    index_holds(workspace, tree)
    return paths
