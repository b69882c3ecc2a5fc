"""Agent and tool steps, as the workflow runs them: the embedded team's model and tool
nodes, with the step's retry backoff before an attempt, its timeout over the attempt's
active time, and a stop signal for when a fan-out fails fast. When a node's result ends
an attempt, the step's verdict (done or failed, and whether another attempt follows) is
recorded with it, so `reduce` replays the same decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from keel.errors import TaskNotFound
from keel.events import kinds
from keel.orchestrator.team import TeamFlow
from keel.orchestrator.unit import Node, Op, Unit
from keel.orchestrator.workflow_spec import AgentNode, ToolNode, WorkflowSpec
from keel.orchestrator.workflow_state import (
    Step,
    Transitions,
    WorkflowState,
    drop_tasks,
    settle_task,
)
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import JsonObject, TaskStatus

STEP_STARTED = kinds.WORKFLOW_STEP_STARTED
STEP_FINISHED = kinds.WORKFLOW_STEP_FINISHED
STEP_RETRY = kinds.WORKFLOW_STEP_RETRY
BRANCH = kinds.WORKFLOW_BRANCH
JOIN = kinds.WORKFLOW_JOIN

TEAM_NODES = ("model", "tools")
EVENT_TEXT_CHARS = 2000


def clip(text: str) -> str:
    return text if len(text) <= EVENT_TEXT_CHARS else text[:EVENT_TEXT_CHARS] + " [cut]"


def about(step: Step) -> JsonObject:
    return {
        "node": step.node,
        "step": step.id,
        "kind": step.kind,
        "visit": step.visit,
        "attempt": step.attempt,
    }


def attempt_outcome(step: Step, result: JsonObject) -> tuple[bool, str] | None:
    """How a team node's result ends the attempt of the step that owns its task: (done,
    output) or (failed, reason); None while the attempt goes on."""
    if "error" in result:
        return False, str(result["error"])
    if step.kind == "agent" and result.get("done"):
        return True, str(result["message"]["content"])
    outcomes = result.get("outcomes") or []
    if step.kind == "tool" and outcomes:
        return bool(outcomes[0]["ok"]), str(outcomes[0]["output"])
    return None


def cancelling(run_id: str, task_ids: Sequence[str], reason: str) -> Op:
    """An op that cancels those of the tasks that exist and have not ended (a task never
    started is left unmade)."""

    def cancel(tx: Tx) -> None:
        for task_id in task_ids:
            try:
                task = TaskRegistry.get_in(tx, task_id)
            except TaskNotFound:
                continue
            if not task.status.is_final:
                TaskRegistry.transition_in(tx, run_id, task_id, TaskStatus.CANCELLED, reason=reason)

    return cancel


class StepRunner:
    """Runs the team's nodes of agent and tool steps, and reduces their results."""

    def __init__(self, spec: WorkflowSpec, team: TeamFlow, transitions: Transitions) -> None:
        self.spec = spec
        self.team = team
        self.transitions = transitions
        self._stops: dict[str, asyncio.Event] = {}

    def stop(self, step_id: str) -> asyncio.Event:
        """Set when the step must stop: its nodes that run end at once, as cancelled."""
        return self._stops.setdefault(step_id, asyncio.Event())

    async def run(self, node: Node, state: WorkflowState, unit: Unit) -> JsonObject:
        task_id = node.task_id
        assert task_id is not None
        step = state.step_of_task(task_id)
        if step is None:
            return await self.team.run(node, state.team, unit)
        stop = self.stop(step.id)
        own = task_id == step.task_id
        if own and not step.begun and step.delay_s > 0 and not step.stopping:
            # the retry's backoff (asyncio.timeout: wait_for can swallow a cancellation)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step.delay_s):
                    await stop.wait()
        if step.stopping or stop.is_set():
            return self._stopped(task_id, step.stopping or "its fan-out failed", unit)
        limit = self._time_left(step, state) if own else None
        started = time.perf_counter()
        if limit is not None and limit <= 0:
            return self._verdict(node, step, state, unit, self._timed_out(node, step, unit, 0))
        job = asyncio.ensure_future(self.team.run(node, state.team, unit))
        halt = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {job, halt}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            halt.cancel()
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
        if job in done:
            result = job.result()
        elif halt in done:
            return self._stopped(task_id, step.stopping or "its fan-out failed", unit)
        else:
            result = self._timed_out(node, step, unit, time.perf_counter() - started)
        return self._verdict(node, step, state, unit, result) if own else result

    def _time_left(self, step: Step, state: WorkflowState) -> float | None:
        """Seconds of the step's timeout its attempt has left (active time, as budgets)."""
        node = self.spec.nodes[step.node]
        if not isinstance(node, AgentNode | ToolNode) or node.timeout_s is None:
            return None
        run = state.team.runs.get(step.task_id or "")
        return node.timeout_s - (run.elapsed_ms / 1000 if run is not None else 0.0)

    def _timed_out(self, node: Node, step: Step, unit: Unit, seconds: float) -> JsonObject:
        spec = self.spec.nodes[step.node]
        assert isinstance(spec, AgentNode | ToolNode)
        reason = f"timed out after {spec.timeout_s:g} s (timeoutS)"
        task_id, run_id = step.task_id, unit.run_id
        assert task_id is not None
        unit.do(
            lambda tx: TaskRegistry.transition_in(
                tx, run_id, task_id, TaskStatus.FAILED, reason=reason
            )
        )
        result: JsonObject = {"error": reason, "elapsedMs": round(seconds * 1000, 3)}
        if node.kind == "tools":
            result["outcomes"] = []
        return result

    def _stopped(self, task_id: str, why: str, unit: Unit) -> JsonObject:
        unit.do(cancelling(unit.run_id, [task_id], why))
        return {"stopped": why}

    def _verdict(
        self, node: Node, step: Step, state: WorkflowState, unit: Unit, result: JsonObject
    ) -> JsonObject:
        """When the result ends the attempt: record it (the tool step's task ends here,
        the agent's in the team's turn) and add the step's verdict for `reduce`."""
        outcome = attempt_outcome(step, result)
        if outcome is None:
            return result
        ok, text = outcome
        task_id, run_id = step.task_id, unit.run_id
        assert task_id is not None
        run = state.team.runs.get(task_id)
        denied = run is not None and False in run.approved.values()  # a person said no
        delay = None if ok or denied else self.transitions.retry_delay_s(step)
        if step.kind == "tool" and "error" not in result:
            status = TaskStatus.DONE if ok else TaskStatus.FAILED
            unit.do(
                lambda tx: TaskRegistry.transition_in(
                    tx,
                    run_id,
                    task_id,
                    status,
                    output={"text": text} if ok else None,
                    reason=None if ok else text,
                )
            )
        finished: JsonObject = {**about(step), "status": "done" if ok else "failed"}
        finished["output" if ok else "reason"] = clip(text)
        unit.emit(STEP_FINISHED, finished, task_id=task_id)
        if delay is not None:
            retry = {**about(step), "nextAttempt": step.attempt + 1, "delayS": delay}
            unit.emit(STEP_RETRY, {**retry, "reason": clip(text)}, task_id=task_id)
        return {**result, "step": {"ok": ok, "text": text, "retry": delay is not None}}

    def reduce(self, state: WorkflowState, node: Node, result: JsonObject) -> WorkflowState:
        task_id = node.task_id
        assert task_id is not None
        if task_id in state.team.finished:
            return state  # a late result of a task that was closed meanwhile
        if "stopped" in result:
            team = drop_tasks(state.team, [task_id], descendants=False)
            return state.model_copy(update={"team": team})
        team = self.team.reduce(state.team, node, result).model_copy(update={"error": None})
        state = state.model_copy(update={"team": team})
        step = state.step_of_task(task_id)
        if step is None:
            return state
        state = self.transitions.begun(state, step.id)
        verdict = result.get("step")
        if verdict is None:
            return state
        ok, text = bool(verdict["ok"]), str(verdict["text"])
        if step.kind == "tool":
            team = settle_task(state.team, task_id, text if ok else None)
            state = state.model_copy(update={"team": team})
        if ok:
            return self.transitions.finish(state, step.id, output=text)
        return self.transitions.finish(state, step.id, reason=text, retry=bool(verdict["retry"]))
