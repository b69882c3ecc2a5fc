"""How a node's result changes a team session's state.

These are pure functions of the state and the result: the run loop replays them from the
log when a session resumes, so the node kinds and the result keys they read are the
checkpoint format and must not change. The plan and merge nodes' own folds live with
those nodes (`team_plan`, `task_workspaces`).
"""

from __future__ import annotations

from collections.abc import Callable

from keel.models import Message, Usage
from keel.orchestrator.delegation import answer_parent, reduce_delegated
from keel.orchestrator.task_workspaces import reduce_merge, reduce_opened
from keel.orchestrator.team_plan import reduce_plan
from keel.orchestrator.team_state import TaskRun, TeamState
from keel.orchestrator.unit import Node
from keel.types import JsonObject

Opening = Callable[[TeamState, str], list[Message]]
"""The first messages of a task's conversation (its agent's instructions, its goal)."""


def reduce(state: TeamState, node: Node, result: JsonObject, opening: Opening) -> TeamState:
    """`result`, the result of `node`, folded into `state`."""
    elapsed = float(result.get("elapsedMs", 0.0))
    if node.kind == "plan":
        return reduce_plan(state, result, elapsed)
    assert node.task_id is not None
    task_id = node.task_id
    if node.kind == "merge":
        return reduce_merge(state, task_id, result, elapsed)
    state = reduce_opened(state, task_id, result)
    agent = state.assigned[task_id]
    run = state.runs.get(task_id) or TaskRun(messages=opening(state, task_id))
    usage = Usage.model_validate(result.get("usage", {}))
    run = run.model_copy(
        update={"usage": run.usage + usage, "elapsed_ms": run.elapsed_ms + elapsed}
    )
    state = state.charged(agent, task_id, usage, elapsed)
    if node.kind == "model" and "message" in result:
        message = Message.model_validate(result["message"])
        bad = any(call.invalid_arguments is not None for call in message.tool_calls)
        run = run.model_copy(
            update={
                "messages": [*run.messages, message],
                "pending": message.tool_calls,
                "turns": run.turns + 1,
                "bad_turns": run.bad_turns + 1 if bad else 0,
            }
        )
    elif node.kind == "tools" and "approval" in result:
        run = run.model_copy(update={"awaiting": result["approval"]["id"]})
        return state.model_copy(update={"runs": {**state.runs, task_id: run}})
    elif node.kind == "tools" and "delegated" in result:
        return reduce_delegated(state, task_id, run, result)
    elif node.kind == "tools" and "handoff" in result:
        return _reduce_handoff(state, task_id, run, result["handoff"], opening)
    elif node.kind == "tools":
        outcomes = result["outcomes"]
        answers = [
            Message(role="tool", content=o["output"], tool_call_id=o["callId"]) for o in outcomes
        ]
        run = run.model_copy(
            update={
                "messages": [*run.messages, *answers],
                "pending": run.pending[len(outcomes) :],
            }
        )
    runs = {**state.runs, task_id: run}
    update: dict[str, object] = {"runs": runs}
    if "error" in result:
        runs.pop(task_id)
        skipped = [t for t in result.get("cancelledDependents", []) if t not in state.finished]
        for dependent in skipped:
            runs.pop(dependent, None)
        if task_id not in state.parents:  # a delegated task's failure goes to its parent
            update["error"] = state.error or f"task {task_id} failed: {result['error']}"
        update["failed"] = [*state.failed, task_id]
        update["cancelled"] = [*state.cancelled, *skipped]
        update["finished"] = [*state.finished, task_id, *skipped]
        state = state.model_copy(update=update)
        return answer_parent(state, task_id, f"error: the sub-task failed: {result['error']}")
    if result.get("done"):
        runs.pop(task_id)
        text = result["message"]["content"]
        if task_id in state.worktrees:  # finished once its change is merged back
            update["merging"] = {**state.merging, task_id: text}
            return state.model_copy(update=update)
        update["outputs"] = {**state.outputs, task_id: text}
        update["finished"] = [*state.finished, task_id]
        return answer_parent(state.model_copy(update=update), task_id, text)
    return state.model_copy(update=update)


def _reduce_handoff(
    state: TeamState, task_id: str, run: TaskRun, handoff: JsonObject, opening: Opening
) -> TeamState:
    """The task starts over with the new agent: its goal, and the note, nothing else."""
    state = state.model_copy(update={"assigned": {**state.assigned, task_id: handoff["agent"]}})
    note = f"{handoff['from']} handed this task to you. Their note: {handoff['note'] or '-'}"
    fresh = TaskRun(
        messages=[*opening(state, task_id), Message(role="user", content=note)],
        usage=run.usage,
        elapsed_ms=run.elapsed_ms,
    )
    return state.model_copy(update={"runs": {**state.runs, task_id: fresh}})
