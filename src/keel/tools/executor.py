"""The tool executor: every tool call passes here. It finds the tool, checks the
arguments, asks the guardrails, runs the call and caps its output. Every failure becomes
the call's result as a tool error the model can read; nothing here crashes the turn."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from keel.events import kinds
from keel.guardrails import Decision, Policy, check
from keel.models import ToolCall
from keel.tools.base import Tool, ToolContext, ToolError
from keel.types import AgentDefinition, JsonObject

MAX_RESULT_CHARS = 32_000

Emit = Callable[[str, dict[str, object]], None]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    call_id: str
    tool: str
    output: str
    ok: bool
    duration_ms: float
    decision: Decision | None = None

    def to_json(self) -> JsonObject:
        return {"callId": self.call_id, "tool": self.tool, "output": self.output, "ok": self.ok}


def cap(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut: {len(text) - limit} more characters]"


class ToolExecutor:
    """Runs tool calls under a policy (default: `Policy.default()`). The risk of a call is
    judged in the workspace of its `ToolContext`, or `workspace` where there is none."""

    def __init__(
        self,
        tools: Mapping[str, Tool],
        *,
        policy: Policy | None = None,
        workspace: Path | None = None,
    ) -> None:
        self.tools = dict(tools)
        self.policy = policy or Policy.default()
        self.workspace = workspace

    def tool(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def decide(
        self, agent: AgentDefinition, call: ToolCall, *, workspace: Path | None = None
    ) -> Decision | None:
        """The guardrails' verdict on a call, or None when the call cannot run at all (an
        unknown tool, bad arguments: `execute` reports those). Give the `workspace` the call
        will run in, or the verdict may differ from the one `execute` reaches."""
        tool = self.tools.get(call.name)
        if tool is None or call.invalid_arguments is not None:
            return None
        try:
            arguments = tool.validate(call.arguments)
        except ToolError:
            return None
        return self._check(agent, tool, arguments, workspace or self.workspace)

    def _check(
        self, agent: AgentDefinition, tool: Tool, arguments: JsonObject, workspace: Path | None
    ) -> Decision:
        return check(
            agent, tool.name, tool.scopes, arguments, policy=self.policy, workspace=workspace
        )

    async def execute(
        self,
        agent: AgentDefinition,
        call: ToolCall,
        context: ToolContext,
        emit: Emit,
        *,
        approved: bool | None = None,
    ) -> ToolOutcome:
        """Run the call. `approved` is a person's answer to an `ask` verdict for it."""
        started = time.perf_counter()

        def failed(message: str, decision: Decision | None = None) -> ToolOutcome:
            elapsed = (time.perf_counter() - started) * 1000
            return ToolOutcome(call.id, call.name, f"error: {message}", False, elapsed, decision)

        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return failed(f"there is no tool '{call.name}' (your tools: {known})")
        if call.invalid_arguments is not None:
            shown = call.invalid_arguments[:200]
            return failed(f"the arguments for {call.name} are not a JSON object: {shown!r}")
        try:
            arguments = tool.validate(call.arguments)
        except ToolError as error:
            return failed(str(error))
        decision = self._check(agent, tool, arguments, context.workspace)
        emit(kinds.GUARDRAIL_DECISION, {"tool": tool.name, "callId": call.id, **decision.to_json()})
        if decision.verdict == "ask" and approved is False:
            return failed("a person denied this call; do not retry it as is", decision)
        if decision.verdict == "ask" and approved is None:
            reasons = "; ".join(decision.reasons)
            return failed(
                f"this call needs a person's approval and was not run: {reasons}", decision
            )
        if decision.verdict == "deny":
            return failed(
                f"the guardrails denied this call: {'; '.join(decision.reasons)}", decision
            )
        try:
            output = await tool.run(arguments, context)
        except ToolError as error:
            return failed(str(error), decision)
        except Exception as error:  # a bug in a tool must not end the session
            return failed(f"{call.name} crashed: {type(error).__name__}: {error}", decision)
        elapsed = (time.perf_counter() - started) * 1000
        return ToolOutcome(call.id, call.name, cap(output), True, elapsed, decision)
