"""`run_command`: a shell command in the workspace, through the session's sandbox.

The sandbox is chosen at the first call unless one is given (bubblewrap by default); when
none can run here the call is refused, unless unsandboxed execution is allowed. The
command reaches the network only when the calling agent is granted `network:external`.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from keel.tools.base import ToolContext, ToolError, TypedTool
from keel.workspace import Sandbox, SandboxUnavailable, select_sandbox

DEFAULT_MEMORY_MB = 4096
"""Memory each process of a command may allocate."""


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

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        *,
        backend: str | None = None,
        allow_unsandboxed: bool = False,
        memory_mb: int | None = DEFAULT_MEMORY_MB,
    ) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.backend = backend
        self.allow_unsandboxed = allow_unsandboxed
        self.memory_mb = memory_mb

    async def _sandbox(self) -> Sandbox:
        if self.sandbox is None:
            try:
                self.sandbox = await asyncio.to_thread(
                    select_sandbox, self.backend, allow_unsandboxed=self.allow_unsandboxed
                )
            except SandboxUnavailable as error:
                raise ToolError(f"refused: no sandbox can run commands here: {error}") from None
        return self.sandbox

    async def call(self, arguments: RunCommandArgs, context: ToolContext) -> str:
        if not context.workspace.is_dir():
            raise ToolError(f"the workspace {context.workspace} does not exist")
        sandbox = await self._sandbox()
        try:
            result = await sandbox.run(
                arguments.command,
                context.workspace,
                timeout_s=arguments.timeout_s,
                network=context.network,
                memory_mb=self.memory_mb,
            )
        except SandboxUnavailable as error:
            raise ToolError(f"refused: {error}") from None
        if result.timed_out:
            return (
                f"killed after {arguments.timeout_s:g} s (timeout); output so far:\n{result.output}"
            )
        return f"exit code {result.exit_code}\n{result.output}"
