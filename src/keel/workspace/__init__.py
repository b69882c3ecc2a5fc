"""Where code is changed and run: the workspace and the sandbox commands run in."""

from __future__ import annotations

from keel.workspace.sandbox import CommandResult, LocalSandbox

__all__ = ["CommandResult", "LocalSandbox"]
