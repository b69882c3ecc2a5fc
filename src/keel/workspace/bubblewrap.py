"""`BubblewrapSandbox`: commands run under bubblewrap (`bwrap`), the default on Linux.

Inside the sandbox the host's file system is visible but read-only, except the workspace
(bound read-write at its own path); the git directories of a worktree are bound read-only
so that git reads work there (`git_mounts`); `/tmp` is a private tmpfs, `/dev` holds only the
harmless devices and `/proc` shows only the sandbox's own processes (a PID namespace).
There is no network (an empty network namespace) unless it is granted. Every capability
is dropped, even when Keel runs as root, so nothing inside can remount the file system
writable. The sandbox's init dies with bubblewrap (`--die-with-parent`) and takes every
process of the namespace with it, so killing bubblewrap kills the whole tree.

The environment is reduced to the path, home, locale and terminal variables plus what the
caller passes: Keel's own secrets (API keys) never reach a command.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from keel.workspace._process import memory_limit_argv, probe, run_process
from keel.workspace.git_mounts import git_mounts
from keel.workspace.sandbox import MAX_OUTPUT_BYTES, CommandResult, Sandbox, SandboxUnavailable

PROBE_TIMEOUT_S = 10.0
KEPT_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TERM", "TZ")
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap), or allow unsandboxed execution in the policy"
)


def _under_tmp(*paths: str) -> list[str]:
    found: list[str] = []
    for path in paths:
        real = os.path.realpath(path)
        if real.startswith("/tmp/") and real not in found:
            found.append(real)
    return found


def isolation_argv(
    bwrap: str,
    workspace: Path | None,
    *,
    network: bool,
    memory_mb: int | None = None,
    git_dirs: Sequence[Path] = (),
) -> list[str]:
    """The bubblewrap command line up to the command itself; `git_dirs` (see
    `git_mounts`) are made visible read-only."""
    argv = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
    ]  # fmt: skip
    # The private /tmp hides the host's: keep visible, read-only, the Python installation
    # that Keel runs from when it lives there (a checkout or a virtual environment in /tmp).
    for needed in _under_tmp(sys.prefix, sys.base_prefix):
        argv += ["--ro-bind", needed, needed]
    # Git's directories, read-only: `status`, `diff`, `log` and `show` work in a worktree,
    # and whatever writes objects or refs (`add`, `commit`, `stash`, `branch`) is refused.
    # Nothing needs those: Keel commits a task's files itself when it merges the task back.
    # Writable, the common directory would hand a command the user's own branches and
    # objects (moving `main`, deleting history), which Keel promises never to touch.
    for git_dir in map(str, git_dirs):
        argv += ["--ro-bind", git_dir, git_dir]
    if workspace is not None:
        # After the tmpfs, so that a workspace under /tmp is the host's, not an empty one;
        # after git's directories, so that a workspace inside one of them stays writable.
        path = str(workspace.resolve())
        argv += ["--bind", path, path, "--chdir", path]
    argv += ["--unshare-pid", "--unshare-ipc"]
    if not network:
        argv.append("--unshare-net")
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--"]
    return argv + memory_limit_argv(memory_mb)


def sandbox_environment(extra: dict[str, str] | None) -> dict[str, str]:
    kept = {
        name: value
        for name, value in os.environ.items()
        if name in KEPT_ENVIRONMENT or name.startswith("LC_")
    }
    return {**kept, "TMPDIR": "/tmp", **(extra or {})}


@functools.cache
def probe_bubblewrap(bwrap: str) -> str | None:
    """Whether `bwrap` can build the sandbox here: None when it can, else the reason.

    Bubblewrap can be installed and still unusable (user namespaces disabled, a container
    without the privilege to create namespaces), so the probe really runs `true` in the
    same sandbox `run` builds. The answer is cached per executable.
    """
    argv = isolation_argv(bwrap, None, network=False)
    return probe([*argv, "/bin/sh", "-c", "true"], PROBE_TIMEOUT_S, "it")


def find_bubblewrap(executable: str = "bwrap") -> str:
    """The path of a bubblewrap that works here; `SandboxUnavailable` says why not."""
    found = shutil.which(executable)
    if found is None:
        raise SandboxUnavailable(f"bubblewrap ({executable}) is not installed: {INSTALL_HINT}")
    reason = probe_bubblewrap(found)
    if reason is not None:
        raise SandboxUnavailable(
            f"bubblewrap ({found}) cannot create a sandbox here ({reason}); it needs user "
            f"namespaces (or root): enable them, or allow unsandboxed execution in the policy"
        )
    return found


class BubblewrapSandbox(Sandbox):
    """Runs commands under bubblewrap; constructing one checks that it works here."""

    name = "bubblewrap"

    def __init__(self, executable: str = "bwrap") -> None:
        self.executable = find_bubblewrap(executable)

    async def run(
        self,
        command: str,
        cwd: Path,
        *,
        timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        max_output: int = MAX_OUTPUT_BYTES,
        network: bool = False,
        memory_mb: int | None = None,
    ) -> CommandResult:
        git_dirs = await asyncio.to_thread(git_mounts, cwd)
        argv = isolation_argv(
            self.executable, cwd, network=network, memory_mb=memory_mb, git_dirs=git_dirs
        )
        return await run_process(
            [*argv, "/bin/sh", "-c", command],
            cwd=cwd,
            env=sandbox_environment(env),
            timeout_s=timeout_s,
            max_output=max_output,
        )

    def describe(self) -> str:
        return (
            f"bubblewrap ({self.executable}): the workspace writable, the rest of the file "
            "system read-only, a private /tmp, no network unless granted"
        )
