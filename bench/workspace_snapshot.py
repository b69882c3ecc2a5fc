"""Workspaces on a 5,000-file repository: worktree creation, snapshot, rollback, and what a
snapshot is measured against (a naive git snapshot and `cp -a`), in the same run.

Each round opens a session (a worktree made from HEAD), then `--steps` times: changes 10
files, takes Keel's snapshot (its own index, kept between snapshots), takes a naive one
(a fresh temporary index, `git add -A`, `write-tree`, `commit-tree`), copies the worktree
with `cp -a`, and rolls back to the snapshot before. The report gives the median of each.

Before the steps the round waits for the next second: git trusts an index entry's file
time only when the file is older than the index (a file written in the same second as
the index is "racily clean" and read again), and a worktree checked out a moment ago has
all 5,000 files that new. An agent's turn takes longer than that; the first snapshot right
after creation is reported on its own line.

Targets (workspace issue): snapshot < 30 ms, rollback < 50 ms, worktree creation < 400 ms.

Run: `.venv/bin/python bench/workspace_snapshot.py [--files 5000] [--rounds 3] [--steps 5]
[--dir /dev/shm]` (the repository goes in the system's temporary directory unless `--dir`
names another; on a busy disk, `cp -a` and worktree creation measure the disk).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from keel.workspace import snapshots
from keel.workspace.git import Git
from keel.workspace.model import Workspace
from keel.workspace.worktrees import WorkspaceManager

TARGETS_MS = {"snapshot": 30.0, "rollback": 50.0, "worktree": 400.0}
CHANGED = 10


def build_repository(root: Path, files: int) -> Path:
    """A repository of `files` small source files in nested folders, committed."""
    repo = root / "repo"
    for number in range(files):
        folder = repo / f"pkg{number % 40:02d}" / f"mod{number % 9}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def f{number}_{line}(x):\n    return x + {line}\n" for line in range(12))
        (folder / f"file{number:05d}.py").write_text(f'"""File {number}."""\n{body}')
    (repo / ".gitignore").write_text("*.pyc\n__pycache__/\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "init")
    return repo


async def timed(action: Awaitable[Any]) -> tuple[float, Any]:
    """Milliseconds `action` (a coroutine, which runs only when awaited) takes."""
    started = time.perf_counter()
    result = await action
    return (time.perf_counter() - started) * 1000, result


async def naive_snapshot(workspace: Workspace, index: Path) -> str:
    await asyncio.to_thread(index.unlink, missing_ok=True)
    git = Git(cwd=workspace.root, git_dir=workspace.git_dir, work_tree=workspace.root)
    git = git.with_index(index)
    await git.run("add", "-A")
    tree = await git.out("write-tree")
    return await git.out("commit-tree", tree, "-m", "naive snapshot")


async def copy_directory(source: Path, target: Path) -> None:
    process = await asyncio.create_subprocess_exec("cp", "-a", str(source), str(target))
    if await process.wait() != 0:
        raise RuntimeError("cp -a failed")


def change_files(workspace: Workspace, files: list[Path], step: int) -> None:
    for path in files[step * CHANGED : (step + 1) * CHANGED]:
        with (workspace.root / path).open("a") as handle:
            handle.write(f"# changed in step {step}\n")


async def wait_for_next_second() -> None:
    await asyncio.sleep(1.05 - (time.time() % 1.0))


async def run(files: int, rounds: int, steps: int, where: Path | None) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {
        "worktree": [],
        "first snapshot": [],
        "snapshot": [],
        "naive snapshot": [],
        "cp -a": [],
        "rollback": [],
    }
    with tempfile.TemporaryDirectory(prefix="keel-bench-workspace-", dir=where) as tmp:
        root = Path(tmp)
        repo = build_repository(root, files)
        sources = sorted(path.relative_to(repo) for path in repo.glob("pkg*/*/*.py"))
        manager = WorkspaceManager(root / "home")
        for round_no in range(rounds):
            session = f"bench{round_no}"
            elapsed, workspace = await timed(manager.open_session(session, repo))
            figures["worktree"].append(elapsed)
            change_files(workspace, sources, steps)
            elapsed, _ = await timed(snapshots.snapshot(workspace, "first"))
            figures["first snapshot"].append(elapsed)
            await wait_for_next_second()
            await snapshots.snapshot(workspace, "warm")
            for step in range(steps):
                change_files(workspace, sources, step)
                elapsed, _ = await timed(snapshots.snapshot(workspace, f"step {step}"))
                figures["snapshot"].append(elapsed)
                index = root / "naive.index"
                elapsed, _ = await timed(naive_snapshot(workspace, index))
                figures["naive snapshot"].append(elapsed)
                copy = root / f"copy-{round_no}-{step}"
                elapsed, _ = await timed(copy_directory(workspace.root, copy))
                figures["cp -a"].append(elapsed)
                await asyncio.to_thread(shutil.rmtree, copy)
                elapsed, undone = await timed(snapshots.rollback(workspace))
                assert len(undone.files) == CHANGED, undone
                figures["rollback"].append(elapsed)
            await manager.close_session(session)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="Where to build the repository (default: the system's temporary directory); "
        "/dev/shm takes the disk out of the figures.",
    )
    args = parser.parse_args()
    git_version = subprocess.run(["git", "version"], capture_output=True, text=True).stdout
    print(
        f"{args.files} files, {args.rounds} rounds x {args.steps} steps, {CHANGED} files "
        f"changed per step; {git_version.strip()}; Python {platform.python_version()}; "
        f"{platform.machine()} {platform.system()}; in {args.dir or tempfile.gettempdir()}"
    )
    figures = asyncio.run(run(args.files, args.rounds, args.steps, args.dir))
    met = True
    for name, values in figures.items():
        median = statistics.median(values)
        spread = f"(min {min(values):.1f}, max {max(values):.1f})"
        line = f"{name:>15}: median {median:7.1f} ms  {spread}"
        target = TARGETS_MS.get(name)
        if target is not None:
            ok = median < target
            met = met and ok
            line += f"  target < {target:.0f} ms: {'met' if ok else 'NOT met'}"
        print(line)
    snap = statistics.median(figures["snapshot"])
    print(
        f"snapshot vs naive: {statistics.median(figures['naive snapshot']) / snap:.1f}x faster; "
        f"vs cp -a: {statistics.median(figures['cp -a']) / snap:.1f}x faster"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
