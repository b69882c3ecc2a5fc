"""`delegate` and `handoff`: tools an agent uses to ask the orchestrator for help.

The orchestrator carries them out (it creates the child task, or passes the task on);
these classes give them a name, a schema and the scopes they need, so that they are
offered to the model and checked by the guardrails like every other tool.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from keel.tools.base import ToolContext, ToolError, TypedTool


class DelegateArgs(BaseModel):
    goal: str = Field(min_length=1, description="What the helper should do, self-contained.")
    role: str = Field(min_length=1, description="The role of the agent that should do it.")


class Delegate(TypedTool[DelegateArgs]):
    name = "delegate"
    description = (
        "Hand a self-contained sub-task to an agent with the given role and wait for its "
        "result, which comes back as this call's result."
    )
    arguments_model = DelegateArgs
    scopes = ("agent:delegate",)

    async def call(self, arguments: DelegateArgs, context: ToolContext) -> str:
        raise ToolError("delegate is carried out by the orchestrator, not on its own")


class HandoffArgs(BaseModel):
    agent: str = Field(min_length=1, description="The name of the agent to pass the task to.")
    note: str = Field(
        default="", description="What the next agent needs to know; it sees nothing else."
    )


class Handoff(TypedTool[HandoffArgs]):
    name = "handoff"
    description = (
        "Pass your whole task to another agent. It starts from the task's goal and your note "
        "only, so put in the note everything it needs."
    )
    arguments_model = HandoffArgs
    scopes = ("agent:handoff",)

    async def call(self, arguments: HandoffArgs, context: ToolContext) -> str:
        raise ToolError("handoff is carried out by the orchestrator, not on its own")


ORCHESTRATION_TOOLS = frozenset({Delegate.name, Handoff.name})
