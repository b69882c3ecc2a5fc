"""A team session: a planner splits the goal into sub-tasks routed to agents by role; each
task is a conversation of model turns and tool calls; a reviewer checks the results.

Every model call and every batch of tool calls is a node of the run loop, so each is
checkpointed: a resumed session does not pay again for a model call that finished, and a
tool call with side effects that a crash interrupted is reported, not re-run. Without a
planner the goal is a single task; without a reviewer the last answers are the result.

This module owns the flow itself and the task nodes (`model`, `tools`); the others live
beside it: the `plan` node in `team_plan`, a person's approvals in `team_approvals`, task
worktrees and the `merge` node in `task_workspaces`, running a tool batch in
`tool_batch`, the fold of results in `team_reduce`, the end in `team_outcome`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from keel.errors import ModelError, PlanError
from keel.events import kinds
from keel.guardrails import Policy, grants
from keel.guardrails.approvals import Approval
from keel.ids import new_id
from keel.models import Message, ModelSettings, RetryingModel, ToolCall, resolve_model
from keel.orchestrator import team_approvals, team_outcome
from keel.orchestrator.budget import Overrun, Spent, overrun, remaining_s
from keel.orchestrator.context import Blackboard, assemble
from keel.orchestrator.delegation import admit, delegate, handoff, remaining
from keel.orchestrator.flow import Flow
from keel.orchestrator.task_workspaces import TaskWorkspaces, merge_nodes, note_opened, writes
from keel.orchestrator.team_plan import PLANNER_ROLE, by_role, plan
from keel.orchestrator.team_reduce import reduce
from keel.orchestrator.team_state import TaskRun, TeamState
from keel.orchestrator.tool_batch import run_batch
from keel.orchestrator.turn import call_model, next_batch
from keel.orchestrator.unit import Node, Outcome, Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.tools import Tool, ToolContext, ToolExecutor
from keel.tools.orchestration import ORCHESTRATION_TOOLS
from keel.types import AgentDefinition, Budget, JsonObject, Session, TaskStatus
from keel.workspace.errors import WorkspaceError
from keel.workspace.model import Workspace
from keel.workspace.worktrees import WorkspaceManager

MAX_BAD_TURNS = 3

WORKSPACE_NOTE = "You work in a workspace directory; tool paths are relative to its root."


class TeamFlow(Flow[TeamState]):
    state_type = TeamState

    def __init__(
        self,
        session: Session,
        agents: Sequence[AgentDefinition],
        settings: ModelSettings | None = None,
        *,
        tools: Mapping[str, Tool] | None = None,
        agent_tools: Mapping[str, Mapping[str, Tool]] | None = None,
        workspace: Path | None = None,
        task_budget: Budget | None = None,
        max_concurrency: int = 4,
        fail_fast: bool = True,
        blackboard: Blackboard | None = None,
        run_id: str = "",
        approval_wait_s: float = 3600.0,
        policy: Policy | None = None,
        snapshots: Workspace | None = None,
        workspaces: WorkspaceManager | None = None,
    ) -> None:
        """`snapshots` is the session's workspace; with `workspaces` as well (and a
        worktree for the session), writing tasks get worktrees of their own."""
        self.session = session
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        self.blackboard = blackboard
        self._run_id = run_id
        self.approval_wait_s = approval_wait_s
        self.policy = policy
        self.agents = {agent.name: agent for agent in agents}
        self._settings = settings or ModelSettings()
        self._models: dict[str, RetryingModel] = {}
        self._tools = dict(tools or {})
        self._agent_tools = {name: dict(found) for name, found in (agent_tools or {}).items()}
        self._executors: dict[str, ToolExecutor] = {}
        self.workspace = workspace
        self.task_budget = task_budget
        self.task_workspaces = TaskWorkspaces(session.id, snapshots, workspaces, blackboard)

    # -- helpers ---------------------------------------------------------------------------

    def _model(self, agent: AgentDefinition) -> RetryingModel:
        if agent.name not in self._models:
            model = resolve_model(agent.model, self._settings)
            policy = agent.retry
            if policy is not None:
                model.max_attempts = policy.max_attempts
                model.base_delay_s = policy.initial_delay_s
                model.max_delay_s = policy.max_delay_s
                model.retry_on = frozenset(policy.retry_on)
                if policy.timeout_s is not None:
                    model.timeout_s = policy.timeout_s
            self._models[agent.name] = model
        return self._models[agent.name]

    def _executor(self, agent: AgentDefinition) -> ToolExecutor:
        if agent.name not in self._executors:
            mine = {name: self._tools[name] for name in agent.tools if name in self._tools}
            mine.update(self._agent_tools.get(agent.name, {}))
            if self.blackboard is not None:
                mine.update(self.blackboard.tools(agent, self._run_id))
            self._executors[agent.name] = ToolExecutor(
                mine, policy=self.policy, workspace=self.workspace
            )
        return self._executors[agent.name]

    def _context(self, agent: AgentDefinition, task_id: str, workspace: Path) -> ToolContext:
        network = grants(agent.permissions, "network:external")
        return ToolContext(workspace, self.session.id, task_id, agent.name, network=network)

    def _opening(self, state: TeamState, task_id: str) -> list[Message]:
        agent = self.agents[state.assigned[task_id]]
        system = "\n\n".join(p for p in (agent.instructions.strip(), WORKSPACE_NOTE) if p)
        goal = state.goals[task_id]
        earlier = [t for t in state.order if t in state.outputs]
        if task_id in state.reviews:
            results = "\n".join(f"- {state.goals[t]}: {state.outputs[t]}" for t in earlier)
            prompt = f"Goal: {goal}\n\nResults to review:\n{results}"
        else:
            prompt = f"Goal: {goal}\n\nThis is part of the session goal: {self.session.goal}"
            if earlier:
                results = "\n".join(f"- {state.goals[t]}: {state.outputs[t]}" for t in earlier)
                prompt += f"\n\nEarlier results:\n{results}"
        return [Message(role="system", content=system), Message(role="user", content=prompt)]

    def _task_budget(self, state: TeamState, task_id: str) -> Budget | None:
        return state.budgets.get(task_id) or self.task_budget

    def _budgets(
        self, state: TeamState, task_id: str, run: TaskRun
    ) -> list[tuple[Budget | None, Spent]]:
        """The session's and the task's budgets, each with what it has spent."""
        return [
            (self.session.budget, state.spent()),
            (self._task_budget(state, task_id), run.spent()),
        ]

    def _overrun(self, state: TeamState, task_id: str, run: TaskRun) -> Overrun | None:
        return overrun("session", self.session.budget, state.spent()) or overrun(
            "task", self._task_budget(state, task_id), run.spent()
        )

    # -- the flow --------------------------------------------------------------------------

    def start(self, unit: Unit) -> TeamState:
        root_id = new_id("t")
        planner = by_role(self.agents, PLANNER_ROLE)
        session = self.session

        def create_root(tx: Tx) -> None:
            TaskRegistry.create_in(
                tx,
                unit.run_id,
                session_id=session.id,
                goal=session.goal,
                assigned_agent=planner.name if planner else None,
                task_id=root_id,
            )
            TaskRegistry.transition_in(tx, unit.run_id, root_id, TaskStatus.RUNNING)

        unit.do(create_root)
        return TeamState(root_task_id=root_id)

    def ready(self, state: TeamState, running: Collection[str]) -> list[Node]:
        if not state.planned:
            return [] if "plan" in running else [Node("plan", "plan", state.root_task_id)]
        busy = {node_id.split(":")[1] for node_id in running if node_id.count(":") >= 2}
        # A merge finishes work already done: it runs even when nothing new may start.
        nodes = merge_nodes(state, busy)
        if state.error is not None and self.fail_fast:
            return nodes
        root_blocked = state.root_task_id in state.blocked
        workers_done = all(t in state.finished for t in state.order if t not in state.reviews)
        for task_id in state.order:
            if task_id in state.finished or task_id in busy or task_id in state.merging:
                continue
            if task_id in state.blocked:
                continue
            run = state.runs.get(task_id)
            if root_blocked and run is None and task_id not in state.parents:
                continue  # the session is blocked: no planned task starts; started ones end
            if run is not None and (run.waiting or run.awaiting):
                continue
            if task_id in state.reviews:
                if not workers_done:
                    continue
            elif not all(needed in state.outputs for needed in state.depends.get(task_id, [])):
                continue
            nodes.append(self._next_node(state, task_id))
        return nodes

    def _next_node(self, state: TeamState, task_id: str) -> Node:
        run = state.runs.get(task_id)
        if run is not None and run.pending:
            # Answers change the id: a batch asked about and run after the answer is a new node.
            node_id = f"tools:{task_id}:{run.turns}:{run.pending[0].id}:{len(run.approved)}"
            return Node(node_id, "tools", task_id)
        return Node(f"model:{task_id}:{(run.turns if run else 0) + 1}", "model", task_id)

    def enter(self, node: Node, state: TeamState, unit: Unit) -> None:
        task_id = node.task_id
        if task_id is None:
            return
        if node.kind == "model" and task_id not in state.runs:
            unit.do(
                lambda tx: TaskRegistry.transition_in(tx, unit.run_id, task_id, TaskStatus.RUNNING)
            )
        elif node.kind == "tools":
            # The journal: each call is recorded as started before it runs.
            agent = self.agents[state.assigned[task_id]]
            for call in next_batch(state.runs[task_id].pending, self._executor(agent)):
                payload = {"callId": call.id, "tool": call.name, "arguments": call.arguments}
                unit.emit(kinds.TOOL_CALL, payload, task_id=task_id, actor=agent.name)

    async def run(self, node: Node, state: TeamState, unit: Unit) -> JsonObject:
        started = time.perf_counter()
        if node.kind == "plan":
            try:
                result = await plan(
                    self.session, self.agents, self._model, unit, state.root_task_id
                )
            except (ModelError, PlanError) as error:
                result = {"error": str(error)}
        elif node.kind == "model":
            result = await self._model_turn(node, state, unit)
        elif node.kind == "merge":
            assert node.task_id is not None
            result = await self.task_workspaces.merge(state, node.task_id, unit)
        else:
            result = await self._tool_batch(node, state, unit)
        if "error" in result and node.task_id is not None:
            await self.task_workspaces.discard(unit, state, node.task_id)
        result.setdefault("elapsedMs", round((time.perf_counter() - started) * 1000, 3))
        return result

    def on_resume(self, node: Node, state: TeamState, unit: Unit) -> JsonObject | None:
        if node.kind != "tools" or node.task_id is None:
            return None
        agent = self.agents[state.assigned[node.task_id]]
        run = state.runs[node.task_id]
        call = next_batch(run.pending, self._executor(agent))[0]
        tool = self._executor(agent).tool(call.name)
        if tool is None or tool.idempotent or call.id in run.approved:
            return None
        wait_s = self.approval_wait_s
        return team_approvals.ask_interrupted(unit, node.task_id, agent, call, wait_s)

    def waiting(self, state: TeamState) -> bool:
        return any(run.awaiting for run in state.runs.values())

    def on_answer(self, state: TeamState, approval: Approval, unit: Unit) -> TeamState:
        return team_approvals.answer(state, approval, unit)

    def reduce(self, state: TeamState, node: Node, result: JsonObject) -> TeamState:
        return reduce(state, node, result, self._opening)

    def outcome(self, state: TeamState, unit: Unit) -> Outcome:
        return team_outcome.outcome(state, unit)

    def cancel(
        self, state: TeamState, task_ids: Collection[str] | None, unit: Unit
    ) -> tuple[TeamState, set[str]]:
        return team_outcome.cancel(state, task_ids, unit)

    # -- the task nodes ----------------------------------------------------------------------

    def _fail_task(self, unit: Unit, state: TeamState, task_id: str, reason: str) -> JsonObject:
        """Fail the task and cancel what depends on it; return the node's result."""
        run_id = unit.run_id
        dependents = sorted(state.dependents({task_id}) - set(state.finished))

        def fail(tx: Tx) -> None:
            TaskRegistry.transition_in(tx, run_id, task_id, TaskStatus.FAILED, reason=reason)
            for dependent in dependents:
                TaskRegistry.transition_in(
                    tx,
                    run_id,
                    dependent,
                    TaskStatus.CANCELLED,
                    reason=f"it depends on task {task_id}, which failed",
                )

        unit.do(fail)
        return {"error": reason, "cancelledDependents": dependents}

    async def _model_turn(self, node: Node, state: TeamState, unit: Unit) -> JsonObject:
        task_id = node.task_id
        assert task_id is not None
        agent = self.agents[state.assigned[task_id]]
        run = state.runs.get(task_id) or TaskRun(messages=self._opening(state, task_id))
        spent = self._overrun(state, task_id, run)
        if spent is not None:
            return self._over_budget(unit, state, task_id, spent)
        executor = self._executor(agent)
        specs = [tool.spec() for tool in executor.tools.values()]
        time_left = remaining_s(self._budgets(state, task_id, run))
        messages = await assemble(
            self.blackboard, agent, run.messages, unit, task_id, state.parents.get(task_id)
        )
        try:
            turn = await call_model(
                agent, self._model(agent), messages, specs, unit, task_id, time_left
            )
        except ModelError as error:
            return self._fail_task(unit, state, task_id, str(error))
        response = turn.response
        result: JsonObject = {
            "message": response.message.model_dump(mode="json", exclude_defaults=True),
            "usage": response.usage.model_dump(),
            "elapsedMs": turn.duration_ms,
        }
        after = run.model_copy(update={"usage": run.usage + response.usage})
        charged = state.charged(agent.name, task_id, response.usage, turn.duration_ms)
        spent = self._overrun(charged, task_id, after)
        if spent is not None:
            return {**result, **self._over_budget(unit, state, task_id, spent)}
        calls = response.message.tool_calls
        if not calls:
            text = response.message.content
            unit.do(
                lambda tx: TaskRegistry.transition_in(
                    tx, unit.run_id, task_id, TaskStatus.DONE, output={"text": text}
                )
            )
            return {**result, "done": True}
        bad_turns = run.bad_turns + 1 if any(c.invalid_arguments for c in calls) else 0
        if bad_turns >= MAX_BAD_TURNS:
            reason = f"the model gave malformed tool calls {bad_turns} turns in a row"
            return {**result, **self._fail_task(unit, state, task_id, reason)}
        if run.turns + 1 >= agent.max_turns:
            reason = f"reached the limit of {agent.max_turns} turns without a final answer"
            return {**result, **self._fail_task(unit, state, task_id, reason)}
        return result

    def _over_budget(
        self, unit: Unit, state: TeamState, task_id: str, spent: Overrun
    ) -> JsonObject:
        unit.emit(kinds.BUDGET_EXCEEDED, spent.to_json(), task_id=task_id)
        return self._fail_task(unit, state, task_id, spent.reason)

    async def _tool_batch(self, node: Node, state: TeamState, unit: Unit) -> JsonObject:
        task_id = node.task_id
        assert task_id is not None
        agent = self.agents[state.assigned[task_id]]
        own = writes(self._executor(agent).tools)
        try:
            workspace = await self.task_workspaces.of(state, task_id, writes=own)
        except WorkspaceError as error:
            reason = f"its worktree could not be opened: {error}"
            return {"outcomes": [], **self._fail_task(unit, state, task_id, reason)}
        opened = note_opened(unit, state, task_id, workspace)
        return {**await self._calls(state, task_id, unit, workspace), **opened}

    async def _calls(
        self, state: TeamState, task_id: str, unit: Unit, workspace: Workspace | None
    ) -> JsonObject:
        """Run the task's next batch of tool calls in `workspace` (None: the directory given,
        without snapshots), once a person has answered what a guardrail asks about."""
        agent = self.agents[state.assigned[task_id]]
        executor = self._executor(agent)
        batch: list[ToolCall] = next_batch(state.runs[task_id].pending, executor)
        if batch[0].name in ORCHESTRATION_TOOLS and executor.tool(batch[0].name) is not None:
            return self._orchestrate(state, agent, batch[0], unit, task_id)
        path = workspace.path if workspace is not None else self.workspace or Path.cwd()
        run = state.runs[task_id]
        answers = dict(run.approved)
        for call in batch:
            if call.id in answers:
                continue
            decision = executor.decide(agent, call, workspace=path)
            if decision is None or decision.verdict != "ask":
                continue
            if team_approvals.remembered(state, agent, call):
                answers[call.id] = True
                continue
            risk = decision.risk if isinstance(decision.risk, int) else round(decision.risk * 100)
            reasons = decision.reasons
            wait_s = self.approval_wait_s
            return team_approvals.ask(
                unit, task_id, agent, call, "guardrail", risk, reasons, wait_s
            )
        context = self._context(agent, task_id, path)
        return await run_batch(executor, agent, batch, context, unit, answers, workspace)

    def _orchestrate(
        self, state: TeamState, agent: AgentDefinition, call: ToolCall, unit: Unit, task_id: str
    ) -> JsonObject:
        tool = self._executor(agent).tool(call.name)
        assert tool is not None
        refused = admit(agent, tool, call, unit, task_id)
        if refused:
            return refused  # type: ignore[return-value]
        if call.name == "handoff":
            return handoff(state, self.agents, agent, call, unit, task_id)
        budget = remaining(self._budgets(state, task_id, state.runs[task_id]))
        agents = list(self.agents.values())
        return delegate(state, agents, agent, call, unit, task_id, budget)
