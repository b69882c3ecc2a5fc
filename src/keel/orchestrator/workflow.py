"""A workflow session: the nodes of a workflow file, run durably by the run loop.

Agent and tool steps are tasks of an embedded `TeamFlow`, which runs them as it runs a
team's tasks: each model call and each tool call is a checkpointed node, tool calls pass
the guardrails (and wait for a person when those ask), and a crash never silently repeats
a side effect. A tool step is a task whose conversation starts with its one call, made as
the workflow's runner agent with the workflow's permissions. This flow adds the rest:
paths from node to node, fan-outs and their joins, conditions, approval gates, and retries
and timeouts per step. Every step's start, finish and retry, every condition's choice and
every join is an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Sequence

from keel.errors import TaskNotFound
from keel.events import kinds
from keel.guardrails import approvals
from keel.guardrails.approvals import Approval
from keel.ids import new_id
from keel.orchestrator.flow import Flow
from keel.orchestrator.team import TeamFlow
from keel.orchestrator.unit import Node, Op, Outcome, Unit
from keel.orchestrator.workflow_expr import evaluate, parse_condition, render
from keel.orchestrator.workflow_spec import (
    RUNNER,
    AgentNode,
    ApprovalNode,
    ConditionNode,
    ParallelNode,
    ToolNode,
    WorkflowSpec,
)
from keel.orchestrator.workflow_state import (
    Step,
    Transitions,
    WorkflowState,
    settle_task,
)
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import JsonObject, SessionStatus, TaskStatus

STEP_STARTED = "workflow.step.started"
STEP_FINISHED = "workflow.step.finished"
STEP_RETRY = "workflow.step.retry"
BRANCH = "workflow.branch"
JOIN = "workflow.join"

TEAM_NODES = ("model", "tools")
EVENT_TEXT_CHARS = 2000


def _clip(text: str) -> str:
    return text if len(text) <= EVENT_TEXT_CHARS else text[:EVENT_TEXT_CHARS] + " [cut]"


def _about(step: Step) -> JsonObject:
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


def _cancelling(run_id: str, task_ids: Sequence[str], reason: str) -> Op:
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


class WorkflowFlow(Flow[WorkflowState]):
    state_type = WorkflowState

    def __init__(self, spec: WorkflowSpec, team: TeamFlow) -> None:
        self.spec = spec
        self.team = team
        self.max_concurrency = team.max_concurrency
        team.agents.setdefault(RUNNER, spec.runner())
        self.transitions = Transitions(spec, team.agents, team.session.id)
        self._stops: dict[str, asyncio.Event] = {}

    # -- where things are ---------------------------------------------------------------

    def _step_of(self, node: Node, state: WorkflowState) -> Step | None:
        if node.kind in TEAM_NODES:
            return state.step_of_task(node.task_id or "")
        return state.steps.get(node.id.split(":", 1)[1])

    def _busy(self, state: WorkflowState, running: Collection[str]) -> set[str]:
        """The steps with a node running."""
        found: set[str] = set()
        for node_id in running:
            prefix, _, rest = node_id.partition(":")
            if prefix in TEAM_NODES:
                step = state.step_of_task(rest.split(":", 1)[0])
            else:
                step = state.steps.get(rest)
            if step is not None:
                found.add(step.id)
        return found

    def _stop(self, step_id: str) -> asyncio.Event:
        """Set when the step must stop: its nodes that run end at once, as cancelled."""
        return self._stops.setdefault(step_id, asyncio.Event())

    def _open_task(self, unit: Unit, state: WorkflowState, step: Step, *, start: bool) -> None:
        """Buffer making the step's task (when it is not made yet), and starting it."""
        task_id, run_id, session_id = step.task_id, unit.run_id, unit.session_id
        assert task_id is not None
        node = self.spec.nodes[step.node]
        agent = node.agent if isinstance(node, AgentNode) else RUNNER
        goal = step.goal if step.kind != "approval" else f"Approval: {step.goal}"
        details: JsonObject = {
            "workflow": self.spec.name,
            "node": step.node,
            "visit": step.visit,
            "attempt": step.attempt,
        }
        root_id = state.team.root_task_id

        def open_task(tx: Tx) -> None:
            try:
                task = TaskRegistry.get_in(tx, task_id)
            except TaskNotFound:
                task = TaskRegistry.create_in(
                    tx,
                    run_id,
                    session_id=session_id,
                    goal=goal,
                    parent_id=root_id,
                    assigned_agent=agent,
                    input=details,
                    task_id=task_id,
                )
            if start and task.status is TaskStatus.PENDING:
                TaskRegistry.transition_in(tx, run_id, task_id, TaskStatus.RUNNING)

        unit.do(open_task)

    # -- the flow -----------------------------------------------------------------------

    def start(self, unit: Unit) -> WorkflowState:
        root_id, run_id, session = new_id("t"), unit.run_id, self.team.session

        def create_root(tx: Tx) -> None:
            TaskRegistry.create_in(
                tx,
                run_id,
                session_id=session.id,
                goal=session.goal,
                input={"workflow": self.spec.name},
                task_id=root_id,
            )
            TaskRegistry.transition_in(tx, run_id, root_id, TaskStatus.RUNNING)

        unit.do(create_root)
        return self.transitions.start(root_id)

    def ready(self, state: WorkflowState, running: Collection[str]) -> list[Node]:
        if state.ended is not None:
            return []
        busy = self._busy(state, running)
        for step_id in busy:
            if state.steps[step_id].stopping:
                self._stop(step_id).set()
        team_running = [n for n in running if n.partition(":")[0] in TEAM_NODES]
        nodes: list[Node] = []
        for node in self.team.ready(state.team, team_running):
            step = state.step_of_task(node.task_id or "")
            if step is not None and not step.stopping:
                nodes.append(node)
        for step in state.steps.values():
            if step.stopping or step.id in busy:
                continue
            if step.kind == "condition":
                nodes.append(Node(f"if:{step.id}", "branch"))
            elif step.kind == "approval" and step.awaiting is None:
                nodes.append(Node(f"gate:{step.id}", "gate", step.task_id))
            elif step.kind == "parallel" and not step.begun:
                nodes.append(Node(f"fork:{step.id}", "fork"))
            elif self.transitions.joinable(state, step, busy):
                nodes.append(Node(f"join:{step.id}", "join"))
        return nodes

    def enter(self, node: Node, state: WorkflowState, unit: Unit) -> None:
        step = self._step_of(node, state)
        if step is not None and not step.begun and node.kind != "join":
            if step.task_id is not None:
                self._open_task(unit, state, step, start=True)
            payload = _about(step)
            fan_out = self.spec.nodes[step.node]
            if isinstance(fan_out, ParallelNode):
                payload["branches"] = fan_out.parallel
            unit.emit(STEP_STARTED, payload, task_id=step.task_id)
        if node.kind in TEAM_NODES:
            self.team.enter(node, state.team, unit)

    async def run(self, node: Node, state: WorkflowState, unit: Unit) -> JsonObject:
        if node.kind in TEAM_NODES:
            return await self._run_team_node(node, state, unit)
        step = state.steps[node.id.split(":", 1)[1]]
        if node.kind == "branch":
            return self._decide(step, state, unit)
        if node.kind == "join":
            return self._join(step, state, unit)
        if node.kind == "gate":
            return self._ask(step, unit)
        return {}  # a fork: its branches start when it is reduced

    def on_resume(self, node: Node, state: WorkflowState, unit: Unit) -> JsonObject | None:
        step = self._step_of(node, state)
        if node.kind not in TEAM_NODES or (step is not None and step.stopping):
            return None
        return self.team.on_resume(node, state.team, unit)

    def reduce(self, state: WorkflowState, node: Node, result: JsonObject) -> WorkflowState:
        if node.kind in TEAM_NODES:
            return self._reduce_team_node(state, node, result)
        step_id = node.id.split(":", 1)[1]
        if step_id not in state.steps:
            return state
        if node.kind == "fork":
            return self.transitions.fork(state, step_id)
        if node.kind == "branch":
            state = self.transitions.begun(state, step_id)
            return self.transitions.finish(state, step_id, target=result["next"])
        if node.kind == "join":
            return self.transitions.join(state, step_id, result.get("reason"))
        return self.transitions.begun(state, step_id, awaiting=result["approval"])

    def cancel(
        self, state: WorkflowState, task_ids: Collection[str] | None, unit: Unit
    ) -> tuple[WorkflowState, set[str]]:
        whole = task_ids is None or state.team.root_task_id in task_ids
        asked = set(task_ids or ())
        if whole:  # the team cancels every task it knows: make the ones not made yet
            for step in state.steps.values():
                if step.task_id is not None and step.task_id not in state.team.finished:
                    self._open_task(unit, state, step, start=False)
        team, affected = self.team.cancel(state.team, task_ids, unit)
        run_id = unit.run_id
        for step in state.steps.values():
            if step.kind == "approval" and step.task_id and (whole or step.task_id in asked):
                unit.do(_cancelling(run_id, [step.task_id], "cancelled"))
                affected.add(step.task_id)
        if whole:
            update = {"team": team, "steps": {}, "ended": "cancelled"}
            return state.model_copy(update=update), affected
        state = state.model_copy(update={"team": team})
        for step_id in [s.id for s in state.steps.values() if s.task_id in affected]:
            if step_id in state.steps:
                state = self.transitions.finish(state, step_id, reason="its task was cancelled")
        return state, affected

    def waiting(self, state: WorkflowState) -> bool:
        gates = any(s.awaiting and not s.stopping for s in state.steps.values())
        return gates or self.team.waiting(state.team)

    def on_answer(self, state: WorkflowState, approval: Approval, unit: Unit) -> WorkflowState:
        step = state.step_of_task(approval.task_id)
        if step is None or step.kind != "approval":
            return state.model_copy(
                update={"team": self.team.on_answer(state.team, approval, unit)}
            )
        if step.awaiting != approval.id or step.stopping:
            return state
        task_id, run_id = step.task_id, unit.run_id
        assert task_id is not None
        output: str | None = None
        reason: str | None = None
        by = approval.answered_by or "someone"
        note = f": {approval.note}" if approval.note else ""
        if approval.allowed:
            output = f"approved by {by}{note}"

            def allow(tx: Tx) -> None:
                why = f"approval {approval.id}: allowed"
                TaskRegistry.transition_in(tx, run_id, task_id, TaskStatus.RUNNING, reason=why)
                TaskRegistry.transition_in(
                    tx, run_id, task_id, TaskStatus.DONE, output={"text": output}
                )

            unit.do(allow)
        else:
            expired = approval.status == "expired"
            reason = "no answer came by the deadline" if expired else f"{by} denied it{note}"
            unit.do(
                lambda tx: TaskRegistry.transition_in(
                    tx, run_id, task_id, TaskStatus.FAILED, reason=reason
                )
            )
        applied = {"approvalId": approval.id, "decision": approval.status, "callId": step.id}
        unit.emit(kinds.APPROVAL_APPLIED, applied, task_id=task_id)
        finished = {**_about(step), "status": "done" if approval.allowed else "failed"}
        finished.update({"output": output} if output is not None else {"reason": reason})
        unit.emit(STEP_FINISHED, finished, task_id=task_id)
        return self.transitions.finish(state, step.id, output=output, reason=reason)

    def outcome(self, state: WorkflowState, unit: Unit) -> Outcome:
        team, run_id = state.team, unit.run_id
        usage = team.total_usage()
        summary: JsonObject = {
            "workflow": self.spec.name,
            "steps": [record.model_dump() for record in state.record],
            "usage": {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens},
            "usageByAgent": {a: u.model_dump() for a, u in team.agent_usage.items()},
            "activeMs": round(team.elapsed_ms, 1),
        }
        leftovers = [t for t in team.order if t not in team.finished]
        unit.do(_cancelling(run_id, leftovers, "the workflow ended"))  # orphaned delegations
        root_id = team.root_task_id
        if state.ended == "done":
            if self.spec.output is not None:
                answer = render(self.spec.output, state.outputs)
            else:
                answer = state.outputs.get(state.last or "", "")
            unit.do(
                lambda tx: TaskRegistry.transition_in(
                    tx, run_id, root_id, TaskStatus.DONE, output={"text": answer}
                )
            )
            return Outcome(SessionStatus.DONE, answer, {"finalAnswer": answer, **summary})
        reason = state.error or "the workflow stopped with nothing left to run"
        unit.do(
            lambda tx: TaskRegistry.transition_in(
                tx, run_id, root_id, TaskStatus.FAILED, reason=reason
            )
        )
        payload: JsonObject = {"reason": reason, **summary}
        if state.failed_at is not None:
            payload["node"] = state.failed_at
        return Outcome(SessionStatus.FAILED, None, payload)

    # -- the nodes of this flow -----------------------------------------------------------

    def _decide(self, step: Step, state: WorkflowState, unit: Unit) -> JsonObject:
        node = self.spec.nodes[step.node]
        assert isinstance(node, ConditionNode)
        value = evaluate(parse_condition(node.condition), state.outputs)
        target = node.then if value else node.otherwise
        choice: JsonObject = {**_about(step), "if": node.condition, "value": value}
        unit.emit(BRANCH, {**choice, "next": target})
        unit.emit(STEP_FINISHED, {**_about(step), "status": "done", "next": target})
        return {"value": value, "next": target}

    def _join(self, step: Step, state: WorkflowState, unit: Unit) -> JsonObject:
        node = self.spec.nodes[step.node]
        assert isinstance(node, ParallelNode)
        reason = self.transitions.join_verdict(step)
        run_id = unit.run_id
        for inner in state.inside(step.id):
            why = inner.stopping or "its fan-out joined"
            if inner.task_id is not None:
                closing = [inner.task_id, *sorted(state.team.descendants({inner.task_id}))]
                unit.do(_cancelling(run_id, closing, why))
            cancelled = {**_about(inner), "status": "cancelled", "reason": why}
            unit.emit(STEP_FINISHED, cancelled, task_id=inner.task_id)
        joined: JsonObject = {**_about(step), "join": node.join, "branches": step.branches}
        finished: JsonObject = {**_about(step), "status": "done" if reason is None else "failed"}
        if reason is not None:
            joined["reason"] = finished["reason"] = reason
        unit.emit(JOIN, {**joined, "ok": reason is None})
        unit.emit(STEP_FINISHED, finished)
        return {"ok": reason is None, **({"reason": reason} if reason is not None else {})}

    def _ask(self, step: Step, unit: Unit) -> JsonObject:
        node = self.spec.nodes[step.node]
        assert isinstance(node, ApprovalNode)
        assert step.task_id is not None
        task_id, run_id, session_id = step.task_id, unit.run_id, unit.session_id
        approval_id = new_id("a")
        wait_s = node.timeout_s or self.team.approval_wait_s

        def ask(tx: Tx) -> None:
            approvals.request_in(
                tx,
                run_id,
                session_id=session_id,
                task_id=task_id,
                agent=RUNNER,
                call_id=step.id,
                tool="approval",
                arguments={"node": step.node, "question": step.goal},
                kind="guardrail",
                risk=0,
                reasons=[step.goal],
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

        unit.do(ask)
        return {"approval": approval_id}

    # -- agent and tool steps: the team's nodes, with retries, timeouts and stops ---------

    async def _run_team_node(self, node: Node, state: WorkflowState, unit: Unit) -> JsonObject:
        task_id = node.task_id
        assert task_id is not None
        step = state.step_of_task(task_id)
        if step is None:
            return await self.team.run(node, state.team, unit)
        stop = self._stop(step.id)
        own = task_id == step.task_id
        if own and not step.begun and step.delay_s > 0 and not step.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), step.delay_s)  # the retry's backoff
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
        unit.do(_cancelling(unit.run_id, [task_id], why))
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
        finished: JsonObject = {**_about(step), "status": "done" if ok else "failed"}
        finished["output" if ok else "reason"] = _clip(text)
        unit.emit(STEP_FINISHED, finished, task_id=task_id)
        if delay is not None:
            retry = {**_about(step), "nextAttempt": step.attempt + 1, "delayS": delay}
            unit.emit(STEP_RETRY, {**retry, "reason": _clip(text)}, task_id=task_id)
        return {**result, "step": {"ok": ok, "text": text, "retry": delay is not None}}

    def _reduce_team_node(
        self, state: WorkflowState, node: Node, result: JsonObject
    ) -> WorkflowState:
        task_id = node.task_id
        assert task_id is not None
        if task_id in state.team.finished:
            return state  # a late result of a task that was closed meanwhile
        if "stopped" in result:
            team = state.team
            dropped = team.model_copy(
                update={
                    "runs": {t: r for t, r in team.runs.items() if t != task_id},
                    "finished": [*team.finished, task_id],
                    "cancelled": [*team.cancelled, task_id],
                }
            )
            return state.model_copy(update={"team": dropped})
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
