"""A person's say over a team task's tool calls: asking (a guardrail says `ask`, or a call
with side effects was cut short by a crash), the rules remembered from earlier answers,
and an answer taken in.

A question is a durable approval request, and the task is blocked until it is answered;
the tool batch asked about runs again, as a new node, with the answer.
"""

from __future__ import annotations

import json

from keel.events import kinds
from keel.guardrails import approvals
from keel.guardrails.approvals import Approval, ApprovalKind
from keel.ids import new_id
from keel.models import ToolCall
from keel.orchestrator.team_state import Remembered, TeamState
from keel.orchestrator.unit import Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import AgentDefinition, JsonObject, TaskStatus


def subject(tool: str, arguments: JsonObject) -> str:
    """What a remembered approval is about: the command, the path, or the arguments."""
    for key in ("command", "path"):
        if isinstance(arguments.get(key), str):
            return str(arguments[key])
    return json.dumps(arguments, sort_keys=True)


def remembered(state: TeamState, agent: AgentDefinition, call: ToolCall) -> bool:
    """Whether a person already allowed this call for the rest of the session."""
    return any(
        rule.agent == agent.name
        and rule.tool == call.name
        and rule.subject == subject(call.name, call.arguments)
        for rule in state.remembered
    )


def block_for_approval(
    unit: Unit,
    task_id: str,
    *,
    agent: str,
    call_id: str,
    tool: str,
    arguments: JsonObject,
    kind: ApprovalKind,
    risk: int,
    reasons: list[str],
    wait_s: float,
) -> str:
    """A durable request for a person's answer, and the task blocked until then (both in
    the step's transaction); returns the approval's id."""
    approval_id, run_id, session_id = new_id("a"), unit.run_id, unit.session_id

    def request(tx: Tx) -> None:
        approvals.request_in(
            tx,
            run_id,
            session_id=session_id,
            task_id=task_id,
            agent=agent,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            kind=kind,
            risk=risk,
            reasons=reasons,
            wait_s=wait_s,
            approval_id=approval_id,
        )
        TaskRegistry.transition_in(
            tx,
            run_id,
            task_id,
            TaskStatus.BLOCKED,
            reason=f"waiting for approval {approval_id}",
        )

    unit.do(request)
    return approval_id


def ask(
    unit: Unit,
    task_id: str,
    agent: AgentDefinition,
    call: ToolCall,
    kind: ApprovalKind,
    risk: int,
    reasons: list[str],
    wait_s: float,
) -> JsonObject:
    """Ask a person about an agent's tool call."""
    approval_id = block_for_approval(
        unit,
        task_id,
        agent=agent.name,
        call_id=call.id,
        tool=call.name,
        arguments=call.arguments,
        kind=kind,
        risk=risk,
        reasons=reasons,
        wait_s=wait_s,
    )
    return {"approval": {"id": approval_id, "callId": call.id}}


def ask_interrupted(
    unit: Unit, task_id: str, agent: AgentDefinition, call: ToolCall, wait_s: float
) -> JsonObject:
    """A call with side effects was running when the process died: ask whether to run it
    again rather than repeat it silently."""
    unit.emit(
        kinds.TOOL_INTERRUPTED,
        {"callId": call.id, "tool": call.name, "arguments": call.arguments},
        task_id=task_id,
    )
    reasons = [
        f"{call.name} was running when the process died and may have taken effect; "
        "allow to run it again, deny to tell the agent it was not"
    ]
    return ask(unit, task_id, agent, call, "interrupted", 50, reasons, wait_s)


def answer(state: TeamState, approval: Approval, unit: Unit) -> TeamState:
    """Take a person's answer in: the task runs again, with the call allowed or denied."""
    task_id = approval.task_id
    run = state.runs.get(task_id)
    if run is None or run.awaiting != approval.id:
        return state
    run = run.model_copy(
        update={
            "awaiting": None,
            "approved": {**run.approved, approval.call_id: approval.allowed},
        }
    )
    rules = list(state.remembered)
    if approval.remember and approval.allowed:
        about = subject(approval.tool, approval.arguments)
        rules.append(Remembered(agent=approval.agent, tool=approval.tool, subject=about))
    run_id = unit.run_id
    unit.do(
        lambda tx: TaskRegistry.transition_in(
            tx,
            run_id,
            task_id,
            TaskStatus.RUNNING,
            reason=f"approval {approval.id}: {approval.status}",
        )
    )
    unit.emit(
        kinds.APPROVAL_APPLIED,
        {"approvalId": approval.id, "decision": approval.status, "callId": approval.call_id},
        task_id=task_id,
    )
    return state.model_copy(update={"runs": {**state.runs, task_id: run}, "remembered": rules})
