"""What this process keeps about each workspace between calls: the lock that makes its
snapshots, rollbacks and merges take turns (and `both`, to run two steps at once under
it), and which tree Keel's index holds.

Only a cache: the refs and the files are the truth. A value here is a hint that saves a
git command, dropped whenever an operation could leave it wrong.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from keel.workspace.model import Workspace

A = TypeVar("A")
B = TypeVar("B")

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_index_trees: dict[str, str] = {}


@asynccontextmanager
async def workspace_lock(workspace: Workspace) -> AsyncIterator[None]:
    """One snapshot, rollback or merge at a time per workspace (in this process): they
    share Keel's index file."""
    by_workspace = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = by_workspace.setdefault(str(workspace.index_file), asyncio.Lock())
    async with lock:
        yield


def index_holds(workspace: Workspace, tree: str | None) -> None:
    """Note the tree Keel's index now holds exactly (None: not known)."""
    if tree is None:
        _index_trees.pop(str(workspace.index_file), None)
    else:
        _index_trees[str(workspace.index_file)] = tree


def index_tree(workspace: Workspace) -> str | None:
    """The tree Keel's index held after the last operation of this process, if known."""
    return _index_trees.get(str(workspace.index_file))


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Run both at once and wait for both, even when one fails, so nothing of them goes on
    after the caller lets go of the workspace's lock."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        await asyncio.wait(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise
    errors = [task.exception() for task in tasks]
    for error in errors:
        if error is not None:
            raise error
    return tasks[0].result(), tasks[1].result()
