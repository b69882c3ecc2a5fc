"""`ContainerSandbox`: commands run in a throwaway docker or podman container.

Each command gets a fresh container of the configured image (a Python slim image unless
told otherwise): the workspace bind-mounted read-write at its own path and used as the
working directory (a worktree's git directories read-only beside it, as in `bubblewrap`),
the image's file system read-only, a private `/tmp`, no network (`--network none`)
unless it is granted, every capability dropped, and limits on memory (the container's
cgroup, so the whole tree counts) and on the number of processes. The container runs as
the calling user, so files it writes in the workspace belong to them.

Killing the `docker run` client does not stop its container, so a timeout or a
cancellation also removes the container by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from keel.workspace._process import probe, run_process
from keel.workspace.git_mounts import git_mounts
from keel.workspace.sandbox import MAX_OUTPUT_BYTES, CommandResult, Sandbox, SandboxUnavailable

ENGINES = ("docker", "podman")
DEFAULT_IMAGE = "python:3.11-slim"
DEFAULT_PIDS_LIMIT = 512
PROBE_TIMEOUT_S = 10.0
REMOVE_TIMEOUT_S = 30.0


@functools.cache
def probe_engine(executable: str) -> str | None:
    """Whether the engine's daemon answers (`<engine> info` succeeds): None when it does,
    else the reason. Cached per executable."""
    return probe([executable, "info"], PROBE_TIMEOUT_S, "'info'")


def find_engine(engine: str | None = None) -> tuple[str, str]:
    """The name and path of a container engine that answers: `engine` ("docker" or
    "podman"), or the first of them that does. `SandboxUnavailable` says why none does."""
    candidates = ENGINES if engine is None else (engine,)
    reasons: list[str] = []
    for candidate in candidates:
        found = shutil.which(candidate)
        if found is None:
            reasons.append(f"{candidate} is not installed")
            continue
        reason = probe_engine(found)
        if reason is None:
            return candidate, found
        reasons.append(f"{candidate} does not answer ({reason})")
    raise SandboxUnavailable(
        f"no container engine is reachable: {'; '.join(reasons)}: start the docker or podman "
        "service, choose the bubblewrap sandbox, or allow unsandboxed execution in the policy"
    )


class ContainerSandbox(Sandbox):
    """Runs each command in a new container; constructing one checks the engine answers."""

    name = "container"

    def __init__(
        self,
        engine: str | None = None,
        *,
        image: str = DEFAULT_IMAGE,
        pids_limit: int = DEFAULT_PIDS_LIMIT,
    ) -> None:
        self.engine, self.executable = find_engine(engine)
        self.image = image
        self.pids_limit = pids_limit

    def container_argv(
        self,
        container: str,
        workspace: Path,
        *,
        network: bool,
        memory_mb: int | None,
        env_names: list[str],
        git_dirs: Sequence[Path] = (),
    ) -> list[str]:
        """The `<engine> run` command line up to the command itself; `git_dirs` (see
        `git_mounts`) are mounted read-only at their own paths, as bubblewrap binds them."""
        path = workspace.resolve()
        argv = [
            self.executable, "run", "--rm", "--init",
            "--name", container,
            "--label", "keel.sandbox=1",
            "--read-only",
            "--tmpfs", "/tmp:rw,nosuid,nodev",
            "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--pids-limit", str(self.pids_limit),
            *(
                part
                for needed in git_dirs
                for part in ("--mount", f"type=bind,source={needed},target={needed},readonly")
            ),
            "--mount", f"type=bind,source={path},target={path}",
            "--workdir", str(path),
        ]  # fmt: skip
        if self.engine == "podman" and os.geteuid() != 0:
            # Rootless podman: keep-id maps the calling user to the same uid inside.
            argv += ["--userns", "keep-id"]
        else:
            argv += ["--user", f"{os.getuid()}:{os.getgid()}"]
        if not network:
            argv += ["--network", "none"]
        if memory_mb is not None:
            argv += ["--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m"]
        for name in env_names:
            # The value comes from the client's environment, not from the command line.
            argv += ["--env", name]
        return [*argv, self.image]

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
        container = f"keel-{uuid.uuid4().hex[:12]}"
        argv = self.container_argv(
            container,
            cwd,
            network=network,
            memory_mb=memory_mb,
            env_names=sorted(env or {}),
            git_dirs=await asyncio.to_thread(git_mounts, cwd),
        )

        async def remove_container() -> None:
            with contextlib.suppress(OSError, TimeoutError):
                remover = await asyncio.create_subprocess_exec(
                    self.executable, "rm", "--force", container,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                await asyncio.wait_for(remover.wait(), REMOVE_TIMEOUT_S)

        return await run_process(
            [*argv, "/bin/sh", "-c", command],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            timeout_s=timeout_s,
            max_output=max_output,
            on_kill=remove_container,
        )

    def describe(self) -> str:
        return (
            f"{self.engine} container ({self.image}): the workspace writable, the image "
            "read-only, a private /tmp, no network unless granted"
        )
