"""Where commands run: the one interface every execution backend implements.

A backend runs a shell command in the workspace and returns a `CommandResult`; it owns the
isolation (what the command may write, whether it reaches the network, how much memory it
may take) and the end of the command (a timeout or a cancellation kills the whole process
tree it started, never just the shell). The backends are `BubblewrapSandbox` (the default
on Linux), `ContainerSandbox` (docker or podman) and `LocalSandbox` (no isolation);
`select_sandbox` picks one. A backend decides nothing about *whether* a command may run:
that is the guardrails' job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from keel.errors import KeelError

MAX_OUTPUT_BYTES = 64 * 1024


class SandboxUnavailable(KeelError):
    """The requested (or default) execution backend cannot run commands on this machine."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int | None
    """None when the command was killed for its timeout."""
    output: str
    """stdout and stderr together, cut at the output limit."""
    timed_out: bool
    duration_s: float
    truncated: bool


class Sandbox(ABC):
    """An execution backend: runs one shell command in a workspace, within limits."""

    name: ClassVar[str]
    isolated: ClassVar[bool] = True
    """False for a backend that runs commands on the host as they are (`local`)."""

    @abstractmethod
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
        """Run `command` with `/bin/sh -c` in `cwd` (the workspace, writable).

        `network` grants the command network access; `memory_mb` caps the memory each of
        its processes may allocate. After `timeout_s` seconds every process the command
        started is killed and the result says `timed_out`.
        """

    @abstractmethod
    def describe(self) -> str:
        """One line saying where commands run and what they may do, for Keel to print."""
