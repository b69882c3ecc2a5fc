"""A batch of a task's tool calls, once a person has said what they had to: the calls run,
the workspace snapshotted before and after a batch that can change files, and each call a
person denied answered as not run, so the agent does not retry it as is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keel.events import kinds
from keel.models import ToolCall
from keel.orchestrator.turn import run_tools
from keel.orchestrator.unit import Unit
from keel.tools import ToolContext, ToolExecutor, ToolOutcome
from keel.types import AgentDefinition, JsonObject
from keel.workspace.model import Workspace
from keel.workspace.snapshots import snapshot

DENIED = "error: not run: a person denied this call; do not retry it as is"


async def run_batch(
    executor: ToolExecutor,
    agent: AgentDefinition,
    batch: Sequence[ToolCall],
    context: ToolContext,
    unit: Unit,
    answers: Mapping[str, bool],
    workspace: Workspace | None,
) -> JsonObject:
    """Run `batch` (`answers`: a person's, by call id) in `workspace` (None: the directory
    of `context`, without snapshots); the tools node's result, outcomes in call order."""
    task_id = context.task_id
    refused = [c for c in batch if answers.get(c.id) is False]
    runnable = [c for c in batch if answers.get(c.id) is not False]
    writes = any(
        (tool := executor.tool(c.name)) is not None and not tool.read_only for c in runnable
    )
    names = ", ".join(c.name for c in runnable)
    if writes:
        await record_snapshot(unit, workspace, task_id, f"before {names}")
    outcomes = await run_tools(executor, agent, runnable, context, unit, answers)
    if writes:
        await record_snapshot(unit, workspace, task_id, f"after {names}")
    for call in refused:
        outcomes.append(ToolOutcome(call.id, call.name, DENIED, False, 0.0))
        unit.emit(
            kinds.TOOL_RESULT,
            {"callId": call.id, "tool": call.name, "ok": False, "output": DENIED},
            task_id=task_id,
            actor=agent.name,
        )
    order = {call.id: index for index, call in enumerate(batch)}
    outcomes.sort(key=lambda outcome: order[outcome.call_id])
    return {"outcomes": [outcome.to_json() for outcome in outcomes]}


async def record_snapshot(
    unit: Unit, workspace: Workspace | None, task_id: str, label: str
) -> None:
    """Record the workspace's files (a no-op when nothing changed since the last)."""
    if workspace is None:
        return
    taken = await snapshot(workspace, label)
    payload: JsonObject = {
        "number": taken.number,
        "commit": taken.short,
        "label": taken.label,
        "filesChanged": taken.files_changed,
    }
    unit.emit(kinds.WORKSPACE_SNAPSHOT, payload, task_id=task_id)
