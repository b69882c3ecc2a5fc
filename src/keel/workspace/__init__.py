"""Where code is changed and run: the workspace and the sandbox commands run in."""

from __future__ import annotations

from keel.workspace.bubblewrap import BubblewrapSandbox
from keel.workspace.container import ContainerSandbox
from keel.workspace.local import LocalSandbox
from keel.workspace.sandbox import MAX_OUTPUT_BYTES, CommandResult, Sandbox, SandboxUnavailable
from keel.workspace.selection import describe_sandbox, select_sandbox

__all__ = [
    "MAX_OUTPUT_BYTES",
    "BubblewrapSandbox",
    "CommandResult",
    "ContainerSandbox",
    "LocalSandbox",
    "Sandbox",
    "SandboxUnavailable",
    "describe_sandbox",
    "select_sandbox",
]
