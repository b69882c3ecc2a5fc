"""What agents can do: the built-in coding tools, MCP tools, and the executor every call
passes through."""

from __future__ import annotations

from keel.tools.base import Tool, ToolContext, ToolError, TypedTool
from keel.tools.blackboard import BLACKBOARD_TOOL_NAMES
from keel.tools.executor import ToolExecutor, ToolOutcome
from keel.tools.files import EditFile, Glob, Grep, ListDir, ReadFile, WriteFile
from keel.tools.orchestration import Delegate, Handoff
from keel.tools.shell import RunCommand

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolExecutor",
    "ToolOutcome",
    "TypedTool",
    "builtin_tools",
]


def builtin_tools(
    *, backend: str | None = None, allow_unsandboxed: bool = False
) -> dict[str, Tool]:
    """The built-in tools; `run_command` runs in the `backend` sandbox (None: the default)."""
    tools: list[Tool] = [
        ReadFile(),
        WriteFile(),
        EditFile(),
        ListDir(),
        Glob(),
        Grep(),
        RunCommand(backend=backend, allow_unsandboxed=allow_unsandboxed),
        Delegate(),
        Handoff(),
    ]
    return {tool.name: tool for tool in tools}


BUILTIN_TOOL_NAMES = frozenset(builtin_tools()) | BLACKBOARD_TOOL_NAMES
"""Every tool name an agent definition may list (the blackboard tools are built per agent)."""
