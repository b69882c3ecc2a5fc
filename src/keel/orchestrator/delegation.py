"""Delegation and handoff, as the team flow carries them out.

`delegate(goal, role)` creates a child task routed by role; the delegating task waits, and
the child's answer (or its failure) becomes the call's result. The child's budget is what
its parent has left. `handoff(agent, note)` passes the task to another agent, which starts
from the task's goal and the note only.
"""

from __future__ import annotations

from keel.errors import PlanError
from keel.events import kinds
from keel.guardrails import check
from keel.ids import new_id
from keel.models import Message, ToolCall
from keel.orchestrator.budget import Spent
from keel.orchestrator.router import route
from keel.orchestrator.team_state import TaskRun, TeamState
from keel.orchestrator.unit import Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.tools import Tool, ToolError
from keel.types import AgentDefinition, Budget, JsonObject


def _refused(call: ToolCall, message: str) -> JsonObject:
    outcome = {"callId": call.id, "tool": call.name, "output": f"error: {message}", "ok": False}
    return {"outcomes": [outcome]}


def admit(
    agent: AgentDefinition, tool: Tool, call: ToolCall, unit: Unit, task_id: str
) -> JsonObject | str:
    """Validate and check the call; return its arguments' error result, or '' if admitted."""
    if call.invalid_arguments is not None:
        return _refused(call, f"the arguments for {call.name} are not a JSON object")
    try:
        arguments = tool.validate(call.arguments)
    except ToolError as error:
        return _refused(call, str(error))
    decision = check(agent, tool.name, tool.scopes, arguments)
    payload = {"tool": tool.name, "callId": call.id, **decision.to_json()}
    unit.emit(kinds.GUARDRAIL_DECISION, payload, task_id=task_id, actor=agent.name)
    if decision.verdict != "allow":
        return _refused(call, "; ".join(decision.reasons))
    return ""


def remaining(budgets: list[tuple[Budget | None, Spent]]) -> Budget | None:
    """What is left under every budget given: the tightest token and time limits."""
    tokens = [b.tokens_limit - s.tokens for b, s in budgets if b and b.tokens_limit is not None]
    times = [
        b.time_limit_ms - s.elapsed_ms for b, s in budgets if b and b.time_limit_ms is not None
    ]
    if not tokens and not times:
        return None
    return Budget(
        tokens_limit=max(1, min(tokens)) if tokens else None,
        time_limit_ms=max(1, int(min(times))) if times else None,
    )


def delegate(
    state: TeamState,
    agents: list[AgentDefinition],
    parent: AgentDefinition,
    call: ToolCall,
    unit: Unit,
    task_id: str,
    budget: Budget | None,
) -> JsonObject:
    goal, role = str(call.arguments["goal"]), str(call.arguments["role"])
    load = {
        a: sum(1 for t in state.order if state.assigned.get(t) == a)
        for a in state.assigned.values()
    }
    try:
        chosen = route(role, agents, load)
    except PlanError as error:
        return _refused(call, str(error))
    child_id = new_id("t")
    session_id, run_id = unit.session_id, unit.run_id

    def create(tx: Tx) -> None:
        TaskRegistry.create_in(
            tx,
            run_id,
            session_id=session_id,
            goal=goal,
            parent_id=task_id,
            assigned_agent=chosen.agent.name,
            input={"role": role, "delegatedBy": parent.name},
            task_id=child_id,
        )

    unit.do(create)
    delegated: JsonObject = {
        "callId": call.id,
        "taskId": child_id,
        "goal": goal,
        "role": role,
        "agent": chosen.agent.name,
    }
    if budget is not None:
        delegated["budget"] = budget.to_json()
    unit.emit(kinds.TASK_DELEGATED, {**delegated, "parentId": task_id}, task_id=task_id)
    unit.emit(
        kinds.ROUTE_DECIDED, {"agent": chosen.agent.name, "reason": chosen.reason}, task_id=child_id
    )
    return {"delegated": delegated}


def handoff(
    state: TeamState,
    agents: dict[str, AgentDefinition],
    current: AgentDefinition,
    call: ToolCall,
    unit: Unit,
    task_id: str,
) -> JsonObject:
    target, note = str(call.arguments["agent"]), str(call.arguments.get("note", ""))
    if target not in agents:
        return _refused(call, f"there is no agent '{target}' (agents: {', '.join(sorted(agents))})")
    if target == current.name:
        return _refused(call, "the task is already yours; hand off to another agent")
    unit.do(lambda tx: TaskRegistry.assign_in(tx, task_id, target))
    unit.emit(kinds.HANDOFF, {"from": current.name, "to": target, "note": note}, task_id=task_id)
    return {"handoff": {"callId": call.id, "agent": target, "note": note, "from": current.name}}


def reduce_delegated(state: TeamState, task_id: str, run: TaskRun, result: JsonObject) -> TeamState:
    """The delegating task now waits for the child, which joins the plan."""
    child = result["delegated"]
    child_id = child["taskId"]
    run = run.model_copy(
        update={"pending": run.pending[1:], "waiting": {**run.waiting, child["callId"]: child_id}}
    )
    budgets = dict(state.budgets)
    if "budget" in child:
        budgets[child_id] = Budget.model_validate(child["budget"])
    return state.model_copy(
        update={
            "runs": {**state.runs, task_id: run},
            "order": [*state.order, child_id],
            "depends": {**state.depends, child_id: []},
            "goals": {**state.goals, child_id: child["goal"]},
            "assigned": {**state.assigned, child_id: child["agent"]},
            "parents": {**state.parents, child_id: task_id},
            "budgets": budgets,
        }
    )


def answer_parent(state: TeamState, child_id: str, text: str) -> TeamState:
    """Give a finished child's answer to the task that delegated it, as the call's result."""
    parent_id = state.parents.get(child_id)
    run = state.runs.get(parent_id) if parent_id else None
    if parent_id is None or run is None:
        return state
    call_id = next((c for c, t in run.waiting.items() if t == child_id), None)
    if call_id is None:
        return state
    answer = Message(role="tool", content=text, tool_call_id=call_id)
    waiting = {c: t for c, t in run.waiting.items() if c != call_id}
    run = run.model_copy(update={"messages": [*run.messages, answer], "waiting": waiting})
    return state.model_copy(update={"runs": {**state.runs, parent_id: run}})
