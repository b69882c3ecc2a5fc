"""Git as asyncio subprocesses: the one place Keel runs `git`.

Every command gets an environment Keel controls: the caller's `GIT_*` variables are
dropped (a `GIT_DIR` or `GIT_INDEX_FILE` left in the shell can never point Keel at the
user's repository or index), the git directory, work tree and index are set explicitly
(never discovered by walking up from a directory that may have vanished; only the
question "which repository holds this directory?" is left to git's discovery), Keel's own
identity signs its commits (nothing depends on the user's git config), and hooks, commit
signing and automatic gc are off for Keel's plumbing.

This module must never block the event loop and never run the user's hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from keel.workspace.errors import GitError, WorkspaceError

KEEL_NAME = "Keel"
KEEL_EMAIL = "keel@localhost"
MIN_GIT = (2, 38)  # `git merge-tree --write-tree`
CANCEL_GRACE_S = 10.0

# Settings for every command Keel runs; `-c` wins over the user's and the repository's config.
_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "advice.detachedHead=false",
)

_version: tuple[int, int] | None = None


def _base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME=KEEL_NAME,
        GIT_AUTHOR_EMAIL=KEEL_EMAIL,
        GIT_COMMITTER_NAME=KEEL_NAME,
        GIT_COMMITTER_EMAIL=KEEL_EMAIL,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


@dataclass(frozen=True, slots=True)
class GitResult:
    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """Standard output as text without its final newline."""
        return self.stdout.decode("utf-8", errors="surrogateescape").removesuffix("\n")


@dataclass(frozen=True, slots=True)
class Git:
    """`git` bound to one repository: the directory it runs in, and optionally its git
    directory, work tree and index file (each exported as `GIT_DIR`, `GIT_WORK_TREE`,
    `GIT_INDEX_FILE`)."""

    cwd: Path
    git_dir: Path | None = None
    work_tree: Path | None = None
    index_file: Path | None = None
    config: tuple[str, ...] = ()
    """More `name=value` settings for every command of this `Git`."""

    def with_index(self, index_file: Path | None) -> Git:
        return replace(self, index_file=index_file)

    def _env(self) -> Mapping[str, str]:
        env = _base_env()
        if self.git_dir is not None:
            env["GIT_DIR"] = str(self.git_dir)
        if self.work_tree is not None:
            env["GIT_WORK_TREE"] = str(self.work_tree)
        if self.index_file is not None:
            env["GIT_INDEX_FILE"] = str(self.index_file)
        return env

    async def run(
        self, *args: str, input: bytes | None = None, ok: Container[int] = (0,)
    ) -> GitResult:
        """Run `git ARGS`; an exit code not in `ok` raises `GitError` with the command and
        its stderr. A cancelled call waits for git to end (see `_stop`) before the
        cancellation goes on, so no git of Keel's outlives the call that started it."""
        spawning = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                "git",
                *_CONFIG,
                *(flag for setting in self.config for flag in ("-c", setting)),
                *args,
                cwd=self.cwd,
                env=self._env(),
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
        try:
            process = await asyncio.shield(spawning)
        except FileNotFoundError as error:
            reason = (
                f"the directory {self.cwd} does not exist"
                if error.filename == str(self.cwd)
                else "git is not installed or not on PATH; Keel's workspaces need git "
                f"{MIN_GIT[0]}.{MIN_GIT[1]} or newer"
            )
            raise GitError(("git", *args), None, reason, str(self.cwd)) from None
        except asyncio.CancelledError:
            # Cancelled while starting: git may start all the same.
            with contextlib.suppress(Exception):
                await _stop(await spawning)
            raise
        try:
            stdout, stderr = await process.communicate(input)
        except BaseException:
            await _stop(process)
            raise
        code = process.returncode
        assert code is not None
        result = GitResult(code, stdout, stderr.decode("utf-8", errors="replace"))
        if code not in ok:
            raise GitError(("git", *args), code, result.stderr, str(self.cwd))
        return result

    async def out(self, *args: str, input: bytes | None = None) -> str:
        """Standard output of `git ARGS` as text, without its final newline."""
        return (await self.run(*args, input=input)).text


async def _stop(process: asyncio.subprocess.Process) -> None:
    """End a git whose caller was cancelled: let it finish (Keel's git commands take
    milliseconds, and one stopped at the wrong moment leaves its `index.lock` behind), and
    stop it with SIGTERM only when it takes longer than `CANCEL_GRACE_S`."""
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), CANCEL_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await asyncio.shield(process.wait())


async def require_git() -> None:
    """Refuse, once per process, a git older than Keel's workspaces need."""
    global _version
    if _version is not None:
        return
    text = await Git(Path("/")).out("version")
    found = re.search(r"(\d+)\.(\d+)", text)
    version = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if version < MIN_GIT:
        raise WorkspaceError(
            f"{text} is too old: Keel's workspaces need git {MIN_GIT[0]}.{MIN_GIT[1]} or newer"
        )
    _version = version
