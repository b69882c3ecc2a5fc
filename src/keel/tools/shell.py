"""`run_command`: a shell command in the workspace, through the session's sandbox."""

from __future__ import annotations

from pydantic import BaseModel, Field

from keel.tools.base import ToolContext, ToolError, TypedTool
from keel.workspace import LocalSandbox


class RunCommandArgs(BaseModel):
    command: str = Field(min_length=1, description="A shell command, run in the workspace root.")
    timeout_s: float = Field(default=120, gt=0, le=1800, description="Seconds before it is killed.")


class RunCommand(TypedTool[RunCommandArgs]):
    name = "run_command"
    description = (
        "Run a shell command in the workspace root and return its exit code and output "
        "(stdout and stderr together)."
    )
    arguments_model = RunCommandArgs
    scopes = ("shell:exec",)

    def __init__(self, sandbox: LocalSandbox | None = None) -> None:
        super().__init__()
        self.sandbox = sandbox or LocalSandbox()

    async def call(self, arguments: RunCommandArgs, context: ToolContext) -> str:
        if not context.workspace.is_dir():
            raise ToolError(f"the workspace {context.workspace} does not exist")
        result = await self.sandbox.run(
            arguments.command, context.workspace, timeout_s=arguments.timeout_s
        )
        if result.timed_out:
            return (
                f"killed after {arguments.timeout_s:g} s (timeout); output so far:\n{result.output}"
            )
        return f"exit code {result.exit_code}\n{result.output}"
