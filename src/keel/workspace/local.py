"""`LocalSandbox`: commands run on this host as they are, in the workspace directory.

No isolation: the command may write anywhere the Keel process may, and reach the network.
Keel uses it only when the policy allows unsandboxed execution explicitly. What it still
does: each command runs in a process group of its own, so a timeout or a cancellation
kills the whole tree it started, and its output and memory are capped.
"""

from __future__ import annotations

import os
from pathlib import Path

from keel.workspace._process import memory_limit_argv, run_process
from keel.workspace.sandbox import MAX_OUTPUT_BYTES, CommandResult, Sandbox


class LocalSandbox(Sandbox):
    """Runs commands on this host, in the workspace, without isolation."""

    name = "local"
    isolated = False

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
        # `network` cannot be withheld without isolation: the host's network is the one.
        argv = [*memory_limit_argv(memory_mb), "/bin/sh", "-c", command]
        return await run_process(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            timeout_s=timeout_s,
            max_output=max_output,
        )

    def describe(self) -> str:
        return (
            "local (no sandbox): commands run on this host unisolated, with its file "
            "system and network, as the policy allows"
        )
