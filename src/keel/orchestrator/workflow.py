"""A workflow session: the nodes of a workflow file, run durably by the run loop.

Agent and tool steps are tasks of an embedded `TeamFlow`, which runs them as it runs a
team's tasks: each model call and each tool call is a checkpointed node, tool calls pass
the guardrails (and wait for a person when those ask), and a crash never silently repeats
a side effect. A tool step is a task whose conversation starts with its one call, made as
the workflow's runner agent with the workflow's permissions. This flow adds the rest:
paths from node to node, fan-outs and their joins, conditions, approval gates, and retries
and timeouts per step. Every step's start, finish and retry, every condition's choice and
every join is an event.

The state and its pure transitions are in `workflow_state`; the team's nodes of agent and
tool steps run through `workflow_steps.StepRunner`.
"""

from __future__ import annotations

from collections.abc import Collection

from keel.errors import TaskNotFound
from keel.events import kinds
from keel.guardrails.approvals import Approval
from keel.ids import new_id
from keel.orchestrator.flow import Flow
from keel.orchestrator.team import TeamFlow
from keel.orchestrator.team_approvals import block_for_approval
from keel.orchestrator.unit import Node, Outcome, Unit
from keel.orchestrator.workflow_expr import evaluate, parse_condition, render
from keel.orchestrator.workflow_spec import (
    RUNNER,
    AgentNode,
    ApprovalNode,
    ConditionNode,
    ParallelNode,
    WorkflowSpec,
)
from keel.orchestrator.workflow_state import Step, Transitions, WorkflowState
from keel.orchestrator.workflow_steps import (
    BRANCH,
    JOIN,
    STEP_FINISHED,
    STEP_STARTED,
    TEAM_NODES,
    StepRunner,
    about,
    cancelling,
)
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import JsonObject, SessionStatus, TaskStatus


class WorkflowFlow(Flow[WorkflowState]):
    state_type = WorkflowState

    def __init__(self, spec: WorkflowSpec, team: TeamFlow) -> None:
        self.spec = spec
        self.team = team
        self.max_concurrency = team.max_concurrency
        team.agents.setdefault(RUNNER, spec.runner())
        self.transitions = Transitions(spec, team.agents, team.session.id)
        self.steps = StepRunner(spec, team, self.transitions)

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
                self.steps.stop(step_id).set()
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
            payload = about(step)
            fan_out = self.spec.nodes[step.node]
            if isinstance(fan_out, ParallelNode):
                payload["branches"] = fan_out.parallel
            unit.emit(STEP_STARTED, payload, task_id=step.task_id)
        if node.kind in TEAM_NODES:
            self.team.enter(node, state.team, unit)

    async def run(self, node: Node, state: WorkflowState, unit: Unit) -> JsonObject:
        if node.kind in TEAM_NODES:
            return await self.steps.run(node, state, unit)
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
            return self.steps.reduce(state, node, result)
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
                unit.do(cancelling(run_id, [step.task_id], "cancelled"))
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
        finished = {**about(step), "status": "done" if approval.allowed else "failed"}
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
            "usageByAgent": {a: u.model_dump() for a, u in team.agent_usage.items() if u.total},
            "activeMs": round(team.elapsed_ms, 1),
        }
        leftovers = [t for t in team.order if t not in team.finished]
        unit.do(cancelling(run_id, leftovers, "the workflow ended"))  # orphaned delegations
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
        choice: JsonObject = {**about(step), "if": node.condition, "value": value}
        unit.emit(BRANCH, {**choice, "next": target})
        unit.emit(STEP_FINISHED, {**about(step), "status": "done", "next": target})
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
                unit.do(cancelling(run_id, closing, why))
            cancelled = {**about(inner), "status": "cancelled", "reason": why}
            unit.emit(STEP_FINISHED, cancelled, task_id=inner.task_id)
        joined: JsonObject = {**about(step), "join": node.join, "branches": step.branches}
        finished: JsonObject = {**about(step), "status": "done" if reason is None else "failed"}
        if reason is not None:
            joined["reason"] = finished["reason"] = reason
        unit.emit(JOIN, {**joined, "ok": reason is None})
        unit.emit(STEP_FINISHED, finished)
        return {"ok": reason is None, **({"reason": reason} if reason is not None else {})}

    def _ask(self, step: Step, unit: Unit) -> JsonObject:
        node = self.spec.nodes[step.node]
        assert isinstance(node, ApprovalNode)
        assert step.task_id is not None
        approval_id = block_for_approval(
            unit,
            step.task_id,
            agent=RUNNER,
            call_id=step.id,
            tool="approval",
            arguments={"node": step.node, "question": step.goal},
            kind="guardrail",
            risk=0,
            reasons=[step.goal],
            wait_s=node.timeout_s or self.team.approval_wait_s,
        )
        return {"approval": approval_id}
