"""The checkpointed state of a workflow session, and its transitions as pure functions.

A *step* is one visit of a workflow node (`fix#2` is the second time `fix` runs); an agent
or tool step has one task per attempt. Agent and tool steps are tasks of the embedded team
state, so the team flow runs their conversations and tool calls. A *path* is the chain of
steps that follow one another (the main path, or a branch of a fan-out); a fan-out step
waits for the paths of its branches, which end as `done` or `failed`.

Everything here is a function of the state and recorded results, with no effects: the run
loop replays it on resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, Field

from keel.models import Message, ToolCall
from keel.orchestrator.team import WORKSPACE_NOTE
from keel.orchestrator.team_state import TaskRun, TeamState
from keel.orchestrator.workflow_expr import render
from keel.orchestrator.workflow_spec import (
    DONE,
    FAILED,
    RUNNER,
    AgentNode,
    ApprovalNode,
    ConditionNode,
    NodeKind,
    ParallelNode,
    ToolNode,
    WorkflowSpec,
    kind_of,
)
from keel.types import AgentDefinition, JsonObject

BranchStatus = Literal["running", "done", "failed"]


class Step(BaseModel):
    id: str = Field(description="`<node>#<visit>`.")
    node: str
    kind: NodeKind
    visit: int
    attempt: int = 1
    task_id: str | None = None
    goal: str = ""
    within: list[str] = Field(
        default_factory=list, description="The fan-out steps it runs inside, outermost first."
    )
    branch: str | None = Field(default=None, description="Its branch of the innermost one.")
    begun: bool = False
    delay_s: float = Field(default=0.0, description="Backoff before this attempt starts.")
    branches: dict[str, BranchStatus] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict, description="Failed branch -> why.")
    awaiting: str | None = Field(default=None, description="The approval a gate waits for.")
    stopping: str | None = Field(default=None, description="Why it is being stopped.")


class StepRecord(BaseModel):
    step: str
    attempt: int
    status: Literal["done", "failed"]


class WorkflowState(BaseModel):
    team: TeamState
    steps: dict[str, Step] = Field(default_factory=dict, description="Steps not finished.")
    tasks: dict[str, str] = Field(default_factory=dict, description="Step task -> step id.")
    visits: dict[str, int] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict, description="Node -> latest output.")
    last: str | None = Field(default=None, description="The node that gave the last output.")
    record: list[StepRecord] = Field(default_factory=list)
    ended: Literal["done", "failed", "cancelled"] | None = None
    error: str | None = None
    failed_at: str | None = None

    def step_of_task(self, task_id: str) -> Step | None:
        """The step a task belongs to: its own, or the one whose task delegated it."""
        current: str | None = task_id
        while current is not None:
            step_id = self.tasks.get(current)
            if step_id is not None:
                return self.steps.get(step_id)
            current = self.team.parents.get(current)
        return None

    def inside(self, step_id: str) -> list[Step]:
        """The steps running inside the fan-out step `step_id`, at any depth."""
        return [step for step in self.steps.values() if step_id in step.within]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _summary(tool: str, args: JsonObject) -> str:
    for key in ("command", "path", "pattern", "key"):
        if isinstance(args.get(key), str):
            return f"{tool}: {args[key]}"
    return f"{tool}: {json.dumps(args, sort_keys=True)}"


class Transitions:
    """How a workflow's state changes: paths arrive at nodes, steps finish, fail and are
    tried again, fan-outs fork and join."""

    def __init__(
        self, spec: WorkflowSpec, agents: Mapping[str, AgentDefinition], session_id: str
    ) -> None:
        self.spec = spec
        self.agents = agents
        self.session_id = session_id

    def task_id(self, step: Step) -> str:
        """A task id that replay computes again: a function of session, step and attempt."""
        seed = f"{self.session_id}/{step.id}/{step.attempt}".encode()
        return f"t_{hashlib.sha256(seed).hexdigest()[:15]}"

    def start(self, root_task_id: str) -> WorkflowState:
        state = WorkflowState(team=TeamState(root_task_id=root_task_id, planned=True))
        assert self.spec.start is not None
        return self.go(state, self.spec.start, [], None, came_from=None)

    # -- paths --------------------------------------------------------------------------

    def go(
        self,
        state: WorkflowState,
        target: str | None,
        within: list[str],
        branch: str | None,
        *,
        came_from: str | None,
    ) -> WorkflowState:
        """The path in `within`/`branch` moves on to `target` (None or `done`: it ends)."""
        if target is None or target == DONE:
            return self.end_path(state, within, branch, None, at=came_from)
        if target == FAILED:
            reason = f"the path reached '{FAILED}' after node '{came_from}'"
            return self.end_path(state, within, branch, reason, at=came_from)
        visit = state.visits.get(target, 0) + 1
        state = state.model_copy(update={"visits": {**state.visits, target: visit}})
        allowed = self.spec.visits_allowed(target)
        if visit > allowed:
            reason = (
                f"node '{target}' would run a {_ordinal(visit)} time; its maxVisits is {allowed}"
            )
            return self.end_path(state, within, branch, reason, at=target)
        step = Step(
            id=f"{target}#{visit}",
            node=target,
            kind=kind_of(self.spec.nodes[target]),
            visit=visit,
            within=list(within),
            branch=branch,
        )
        return self._begin(state, step)

    def _begin(self, state: WorkflowState, step: Step) -> WorkflowState:
        """Put an attempt of `step` in the state (with its task, for a team to run)."""
        node = self.spec.nodes[step.node]
        team = state.team
        if isinstance(node, AgentNode | ToolNode | ApprovalNode):
            step = step.model_copy(update={"task_id": self.task_id(step)})
        task_id = step.task_id or ""
        if isinstance(node, AgentNode):
            goal = render(node.goal, state.outputs)
            agent = self.agents[node.agent]
            system = "\n\n".join(p for p in (agent.instructions.strip(), WORKSPACE_NOTE) if p)
            prompt = (
                f"Goal: {goal}\n\nThis is step '{step.node}' of the workflow '{self.spec.name}'."
            )
            opening = [Message(role="system", content=system), Message(role="user", content=prompt)]
            team = _add_task(team, task_id, goal, node.agent, TaskRun(messages=opening))
            step = step.model_copy(update={"goal": goal})
        elif isinstance(node, ToolNode):
            goal = _summary(node.tool, node.args)
            call = ToolCall(id=f"{step.id}.{step.attempt}", name=node.tool, arguments=node.args)
            team = _add_task(team, task_id, goal, RUNNER, TaskRun(pending=[call]))
            step = step.model_copy(update={"goal": goal})
        elif isinstance(node, ApprovalNode):
            step = step.model_copy(update={"goal": render(node.approval, state.outputs)})
        tasks = {**state.tasks, task_id: step.id} if task_id else state.tasks
        return state.model_copy(
            update={"team": team, "tasks": tasks, "steps": {**state.steps, step.id: step}}
        )

    def end_path(
        self,
        state: WorkflowState,
        within: list[str],
        branch: str | None,
        reason: str | None,
        *,
        at: str | None,
    ) -> WorkflowState:
        """A path ended: done (`reason` None) or failed. The main path's end is the
        workflow's; a branch's is its fan-out's to count (and, failing under `fail_fast`,
        the signal for its other branches to stop)."""
        if not within:
            if reason is None:
                return state.model_copy(update={"ended": "done"})
            return state.model_copy(update={"ended": "failed", "error": reason, "failed_at": at})
        fan_out = state.steps.get(within[-1])
        if fan_out is None or branch is None:
            return state
        status: BranchStatus = "done" if reason is None else "failed"
        reasons = fan_out.reasons if reason is None else {**fan_out.reasons, branch: reason}
        fan_out = fan_out.model_copy(
            update={"branches": {**fan_out.branches, branch: status}, "reasons": reasons}
        )
        steps = {**state.steps, fan_out.id: fan_out}
        node = self.spec.nodes[fan_out.node]
        if reason is not None and isinstance(node, ParallelNode) and node.join == "fail_fast":
            why = f"branch '{branch}' of '{fan_out.node}' failed"
            steps = {
                sid: s.model_copy(update={"stopping": s.stopping or why})
                if fan_out.id in s.within
                else s
                for sid, s in steps.items()
            }
        return state.model_copy(update={"steps": steps})

    # -- steps --------------------------------------------------------------------------

    def begun(self, state: WorkflowState, step_id: str, **update: object) -> WorkflowState:
        step = state.steps[step_id].model_copy(update={"begun": True, **update})
        return state.model_copy(update={"steps": {**state.steps, step_id: step}})

    def retry_delay_s(self, step: Step) -> float | None:
        """Seconds to wait before the next attempt of a failed step; None when none is left."""
        node = self.spec.nodes[step.node]
        if not isinstance(node, AgentNode | ToolNode) or node.retry is None:
            return None
        if step.attempt >= node.retry.max_attempts:
            return None
        return node.retry.delay_s(step.attempt)

    def finish(
        self,
        state: WorkflowState,
        step_id: str,
        *,
        output: str | None = None,
        reason: str | None = None,
        retry: bool = False,
        target: str | None = None,
    ) -> WorkflowState:
        """The step (or its attempt) ended: done when `reason` is None, else failed. A done
        step moves its path on (to `target`, else the node's `next`); a failed one is tried
        again when `retry` allows and attempts are left, else its path fails. A step being
        stopped stays, for its fan-out's join to close."""
        step = state.steps[step_id]
        if step.stopping:
            return state
        status: Literal["done", "failed"] = "done" if reason is None else "failed"
        record = [*state.record, StepRecord(step=step.id, attempt=step.attempt, status=status)]
        steps = {sid: s for sid, s in state.steps.items() if sid != step_id}
        state = state.model_copy(update={"steps": steps, "record": record})
        if reason is not None:
            delay_s = self.retry_delay_s(step) if retry else None
            if delay_s is not None:
                again = step.model_copy(
                    update={
                        "attempt": step.attempt + 1,
                        "begun": False,
                        "delay_s": delay_s,
                        "task_id": None,
                    }
                )
                return self._begin(state, again)
            why = f"node '{step.node}' failed: {reason}"
            return self.end_path(state, step.within, step.branch, why, at=step.node)
        if output is not None:
            state = state.model_copy(
                update={"outputs": {**state.outputs, step.node: output}, "last": step.node}
            )
        node = self.spec.nodes[step.node]
        if target is None and not isinstance(node, ConditionNode):
            target = node.next
        return self.go(state, target, step.within, step.branch, came_from=step.node)

    def fork(self, state: WorkflowState, step_id: str) -> WorkflowState:
        """Start a path for each branch (none when the fan-out is being stopped)."""
        node = self.spec.nodes[state.steps[step_id].node]
        assert isinstance(node, ParallelNode)
        if state.steps[step_id].stopping:
            return self.begun(state, step_id)
        state = self.begun(state, step_id, branches=dict.fromkeys(node.parallel, "running"))
        step = state.steps[step_id]
        for branch in node.parallel:
            state = self.go(state, branch, [*step.within, step.id], branch, came_from=step.node)
        return state

    def joinable(self, state: WorkflowState, step: Step, busy: set[str]) -> bool:
        """Whether the fan-out can join: every branch ended, or one failed under
        `fail_fast` and nothing inside it still runs."""
        if step.kind != "parallel" or not step.begun or step.stopping:
            return False
        statuses = step.branches.values()
        if "running" not in statuses:
            return True
        node = self.spec.nodes[step.node]
        assert isinstance(node, ParallelNode)
        return (
            node.join == "fail_fast"
            and "failed" in statuses
            and not any(inner.id in busy for inner in state.inside(step.id))
        )

    @staticmethod
    def join_verdict(step: Step) -> str | None:
        """None when every branch is done, else why the fan-out failed."""
        failed = [b for b, status in step.branches.items() if status == "failed"]
        if not failed:
            return None
        return "; ".join(f"branch '{b}' failed: {step.reasons.get(b, '?')}" for b in failed)

    def join(self, state: WorkflowState, step_id: str, reason: str | None) -> WorkflowState:
        """Close what still stands inside the fan-out, then finish it."""
        inner = {s.id: s.task_id for s in state.inside(step_id)}
        tasks = [task_id for task_id in inner.values() if task_id is not None]
        team = drop_tasks(state.team, tasks, descendants=True)
        steps = {sid: s for sid, s in state.steps.items() if sid not in inner}
        state = state.model_copy(update={"team": team, "steps": steps})
        return self.finish(state, step_id, reason=reason)


# -- the team's part ------------------------------------------------------------------------


def _add_task(team: TeamState, task_id: str, goal: str, agent: str, run: TaskRun) -> TeamState:
    return team.model_copy(
        update={
            "order": [*team.order, task_id],
            "depends": {**team.depends, task_id: []},
            "goals": {**team.goals, task_id: goal},
            "assigned": {**team.assigned, task_id: agent},
            "runs": {**team.runs, task_id: run},
        }
    )


def settle_task(team: TeamState, task_id: str, output: str | None) -> TeamState:
    """A tool step's task ended (done with `output`, or failed when it is None): the team
    would otherwise ask a model what to do next."""
    if task_id in team.finished:
        return team
    runs = {t: run for t, run in team.runs.items() if t != task_id}
    update: dict[str, object] = {"runs": runs, "finished": [*team.finished, task_id]}
    if output is None:
        update["failed"] = [*team.failed, task_id]
    else:
        update["outputs"] = {**team.outputs, task_id: output}
    return team.model_copy(update=update)


def drop_tasks(team: TeamState, task_ids: Iterable[str], *, descendants: bool) -> TeamState:
    """The tasks (and what they delegated) that have not ended, as cancelled."""
    chosen = set(task_ids)
    if descendants:
        chosen |= team.descendants(chosen)
    dropped = [t for t in team.order if t in chosen and t not in team.finished]
    if not dropped:
        return team
    return team.model_copy(
        update={
            "runs": {t: run for t, run in team.runs.items() if t not in chosen},
            "finished": [*team.finished, *dropped],
            "cancelled": [*team.cancelled, *dropped],
        }
    )
