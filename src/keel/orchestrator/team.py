"""A team session: a planner splits the goal into sub-tasks routed to agents by role; each
task is a conversation of model turns and tool calls; a reviewer checks the results.

Every model call and every batch of tool calls is a node of the run loop, so each is
checkpointed: a resumed session does not pay again for a model call that finished, and a
tool call with side effects that a crash interrupted is reported, not re-run. Without a
planner the goal is a single task; without a reviewer the last answers are the result.

On a session worktree (a git repository), a task whose agent can change files works in a
worktree of its own, opened at its first tool batch from its parent's files as they are
then (the session's, or the delegating task's); read-only tasks work in their parent's.
When the task is done, a `merge` node merges its worktree back into its parent's; the
node's result records the merge, and a merge a crash cut short is found again rather than
repeated. A conflict is never resolved by overwriting: nothing is merged, the conflict is
kept as an artifact, and the parent (the root task, for a planned task) is blocked, so
the session ends failed and says why. A failed task's worktree is removed, its change
kept as an artifact.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from keel.blackboard import Actor
from keel.errors import ModelError, PlanError
from keel.events import kinds
from keel.guardrails import Policy, approvals, grants
from keel.guardrails.approvals import Approval, ApprovalKind
from keel.ids import new_id
from keel.models import Message, ModelSettings, RetryingModel, ToolCall, Usage, resolve_model
from keel.orchestrator.budget import Overrun, overrun, remaining_s
from keel.orchestrator.context import Blackboard, assemble
from keel.orchestrator.delegation import (
    admit,
    answer_parent,
    delegate,
    handoff,
    reduce_delegated,
    remaining,
)
from keel.orchestrator.flow import Flow
from keel.orchestrator.planner import PLAN_FORMAT, Plan, PlannedTask, parse_plan
from keel.orchestrator.router import (
    ROUTER_ROLE,
    NoRoute,
    Route,
    read_router_answer,
    route,
    router_prompt,
)
from keel.orchestrator.team_state import Remembered, TaskRun, TeamState
from keel.orchestrator.turn import call_model, next_batch, run_tools
from keel.orchestrator.unit import Node, Outcome, Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.tools import Tool, ToolContext, ToolExecutor, ToolOutcome
from keel.tools.blackboard import BLACKBOARD_TOOL_NAMES
from keel.tools.orchestration import ORCHESTRATION_TOOLS
from keel.types import (
    AgentDefinition,
    ArtifactType,
    Budget,
    JsonObject,
    MemoryScope,
    Session,
    SessionStatus,
    TaskStatus,
)
from keel.workspace.errors import WorkspaceError
from keel.workspace.model import Workspace, WorkspaceKind
from keel.workspace.snapshots import final_patch, snapshot
from keel.workspace.worktrees import WorkspaceManager

PLANNER_ROLE = "planner"
REVIEWER_ROLE = "reviewer"
MAX_BAD_TURNS = 3

WORKSPACE_NOTE = "You work in a workspace directory; tool paths are relative to its root."
RECORD_TOOLS = ORCHESTRATION_TOOLS | BLACKBOARD_TOOL_NAMES
"""Tools that change Keel's records, not files: an agent with only these does not write."""


def _subject(tool: str, arguments: JsonObject) -> str:
    """What a remembered approval is about: the command, the path, or the arguments."""
    for key in ("command", "path"):
        if isinstance(arguments.get(key), str):
            return str(arguments[key])
    return json.dumps(arguments, sort_keys=True)


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
        self.snapshots = snapshots
        self.agents = {agent.name: agent for agent in agents}
        self._settings = settings or ModelSettings()
        self._models: dict[str, RetryingModel] = {}
        self._tools = dict(tools or {})
        self._agent_tools = {name: dict(found) for name, found in (agent_tools or {}).items()}
        self._executors: dict[str, ToolExecutor] = {}
        self.workspace = workspace
        self.task_budget = task_budget
        self.workspaces = workspaces
        self._task_workspaces: dict[str, Workspace] = {}
        self._worktree_lock = asyncio.Lock()

    # -- helpers ---------------------------------------------------------------------------

    def _by_role(self, role: str) -> AgentDefinition | None:
        matching = sorted((a for a in self.agents.values() if a.role == role), key=lambda a: a.name)
        return matching[0] if matching else None

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

    # -- task worktrees ----------------------------------------------------------------------

    @property
    def task_worktrees(self) -> bool:
        """Whether writing tasks get worktrees of their own: on a session worktree, with a
        manager to make them (a plain directory has no branches to merge)."""
        return (
            self.workspaces is not None
            and self.snapshots is not None
            and self.snapshots.kind is WorkspaceKind.WORKTREE
        )

    def _writes(self, agent: AgentDefinition) -> bool:
        """Whether the agent can change files: it has a tool that is not read-only, other
        than the orchestration and blackboard tools (they change Keel's records only)."""
        return any(
            not tool.read_only and name not in RECORD_TOOLS
            for name, tool in self._executor(agent).tools.items()
        )

    async def _workspace_of(
        self, state: TeamState, task_id: str, *, open_own: bool = False
    ) -> Workspace | None:
        """Where a task works: its own worktree (opened, with `open_own`, when its agent
        writes), else its parent's workspace, up to the session's."""
        if not self.task_worktrees or task_id == state.root_task_id:
            return self.snapshots
        parent = await self._workspace_of(state, state.parents.get(task_id, state.root_task_id))
        writes = open_own and self._writes(self.agents[state.assigned[task_id]])
        if task_id not in state.worktrees and not writes:
            return parent
        assert parent is not None
        assert self.workspaces is not None
        async with self._worktree_lock:
            if task_id not in self._task_workspaces:
                # The same worktree after a crash: its path and branch are the task's id.
                opened = await self.workspaces.open_task(parent, task_id)
                self._task_workspaces[task_id] = opened
        return self._task_workspaces[task_id]

    def _note_opened(
        self, unit: Unit, state: TeamState, task_id: str, workspace: Workspace | None
    ) -> JsonObject:
        """The result's record of a worktree the task opened in this node (empty if none)."""
        if workspace is None or workspace.task_id != task_id or task_id in state.worktrees:
            return {}
        opened: JsonObject = {"path": str(workspace.root), "branch": workspace.branch}
        parent_id = state.parents.get(task_id, state.root_task_id)
        unit.emit(
            kinds.WORKSPACE_TASK_OPENED, {**opened, "parentTaskId": parent_id}, task_id=task_id
        )
        return {"worktree": opened}

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

    def _overrun(self, state: TeamState, task_id: str, run: TaskRun) -> Overrun | None:
        return overrun("session", self.session.budget, state.spent()) or overrun(
            "task", self._task_budget(state, task_id), run.spent()
        )

    # -- the flow --------------------------------------------------------------------------

    def start(self, unit: Unit) -> TeamState:
        root_id = new_id("t")
        planner = self._by_role(PLANNER_ROLE)
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
        nodes = [
            Node(f"merge:{t}:{state.parents.get(t, state.root_task_id)}", "merge", t)
            for t in state.merging
            if t not in busy
        ]
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
                result = await self._plan(state, unit)
            except (ModelError, PlanError) as error:
                result = {"error": str(error)}
        elif node.kind == "model":
            result = await self._model_turn(node, state, unit)
        elif node.kind == "merge":
            result = await self._merge(node, state, unit)
        else:
            result = await self._tool_batch(node, state, unit)
        if "error" in result and node.task_id is not None:
            await self._discard(unit, state, node.task_id)
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
        unit.emit(
            kinds.TOOL_INTERRUPTED,
            {"callId": call.id, "tool": call.name, "arguments": call.arguments},
            task_id=node.task_id,
        )
        reasons = [
            f"{call.name} was running when the process died and may have taken effect; "
            "allow to run it again, deny to tell the agent it was not"
        ]
        return self._ask(unit, node.task_id, agent, call, "interrupted", 50, reasons)

    def _ask(
        self,
        unit: Unit,
        task_id: str,
        agent: AgentDefinition,
        call: ToolCall,
        kind: ApprovalKind,
        risk: int,
        reasons: list[str],
    ) -> JsonObject:
        """Ask a person about a call: a durable request, and the task blocked until then."""
        approval_id, run_id, session_id = new_id("a"), unit.run_id, unit.session_id
        wait_s = self.approval_wait_s

        def ask(tx: Tx) -> None:
            approvals.request_in(
                tx,
                run_id,
                session_id=session_id,
                task_id=task_id,
                agent=agent.name,
                call_id=call.id,
                tool=call.name,
                arguments=call.arguments,
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

        unit.do(ask)
        return {"approval": {"id": approval_id, "callId": call.id}}

    def waiting(self, state: TeamState) -> bool:
        return any(run.awaiting for run in state.runs.values())

    def on_answer(self, state: TeamState, approval: Approval, unit: Unit) -> TeamState:
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
        remembered = list(state.remembered)
        if approval.remember and approval.allowed:
            subject = _subject(approval.tool, approval.arguments)
            remembered.append(Remembered(agent=approval.agent, tool=approval.tool, subject=subject))
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
        return state.model_copy(
            update={"runs": {**state.runs, task_id: run}, "remembered": remembered}
        )

    def reduce(self, state: TeamState, node: Node, result: JsonObject) -> TeamState:
        elapsed = float(result.get("elapsedMs", 0.0))
        if node.kind == "plan":
            return self._reduce_plan(state, result, elapsed)
        assert node.task_id is not None
        task_id = node.task_id
        if node.kind == "merge":
            return self._reduce_merge(state, task_id, result, elapsed)
        if "worktree" in result:
            worktrees = {**state.worktrees, task_id: result["worktree"]["path"]}
            state = state.model_copy(update={"worktrees": worktrees})
        agent = state.assigned[task_id]
        run = state.runs.get(task_id) or TaskRun(messages=self._opening(state, task_id))
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
            return self._reduce_handoff(state, task_id, run, result["handoff"])
        elif node.kind == "tools":
            outcomes = result["outcomes"]
            answers = [
                Message(role="tool", content=o["output"], tool_call_id=o["callId"])
                for o in outcomes
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
        self, state: TeamState, task_id: str, run: TaskRun, handoff: JsonObject
    ) -> TeamState:
        """The task starts over with the new agent: its goal, and the note, nothing else."""
        state = state.model_copy(update={"assigned": {**state.assigned, task_id: handoff["agent"]}})
        note = f"{handoff['from']} handed this task to you. Their note: {handoff['note'] or '-'}"
        fresh = TaskRun(
            messages=[*self._opening(state, task_id), Message(role="user", content=note)],
            usage=run.usage,
            elapsed_ms=run.elapsed_ms,
        )
        return state.model_copy(update={"runs": {**state.runs, task_id: fresh}})

    def outcome(self, state: TeamState, unit: Unit) -> Outcome:
        root_id, run_id = state.root_task_id, unit.run_id
        usage = state.total_usage()
        summary: JsonObject = {
            "tasks": len(state.order),
            "usage": {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens},
            "usageByAgent": {a: u.model_dump() for a, u in state.agent_usage.items()},
            "usageByTask": {t: u.model_dump() for t, u in state.task_usage.items()},
            "activeMs": round(state.elapsed_ms, 1),
        }
        if state.error is not None or state.blocked:
            reasons = [state.error] if state.error is not None else []
            for task_id, why in state.blocked.items():
                blocked = "the session" if task_id == root_id else f"task {task_id}"
                reasons.append(f"{blocked} is blocked: {why}")
            error = "; ".join(reasons)
            unfinished = [
                t
                for t in state.order
                if t not in state.finished and t not in state.blocked and t not in state.merging
            ]
            root_stays = root_id in state.blocked  # blocked, for a person to look at

            def fail(tx: Tx) -> None:
                for task_id in unfinished:
                    TaskRegistry.transition_in(
                        tx, run_id, task_id, TaskStatus.CANCELLED, reason="the session failed"
                    )
                if not root_stays:
                    TaskRegistry.transition_in(tx, run_id, root_id, TaskStatus.FAILED, reason=error)

            unit.do(fail)
            failed: JsonObject = {"reason": error, **summary}
            if state.blocked:
                failed["blocked"] = dict(state.blocked)
            return Outcome(SessionStatus.FAILED, None, failed)
        reviewed = [t for t in state.reviews if t in state.outputs]
        if reviewed:
            answer = state.outputs[reviewed[-1]]
        else:
            answer = "\n".join(
                state.outputs[t]
                for t in state.order
                if t in state.outputs and t not in state.parents
            )
        if state.cancelled:
            summary["cancelledTasks"] = list(state.cancelled)
        unit.do(
            lambda tx: TaskRegistry.transition_in(
                tx, run_id, root_id, TaskStatus.DONE, output={"text": answer}
            )
        )
        return Outcome(SessionStatus.DONE, answer, {"finalAnswer": answer, **summary})

    def cancel(
        self, state: TeamState, task_ids: Collection[str] | None, unit: Unit
    ) -> tuple[TeamState, set[str]]:
        # A task waiting for its merge is done: its merge runs on unless the whole session
        # stops, and then its worktree is left, unmerged, until the session is deleted.
        unfinished = [t for t in state.order if t not in state.finished and t not in state.merging]
        if task_ids is None:
            chosen = set(unfinished)
        else:
            asked = set(task_ids)
            related = asked | state.dependents(asked)
            related |= state.descendants(related)
            chosen = {t for t in related if t in unfinished}
        whole = task_ids is None or state.root_task_id in (task_ids or ())
        if whole:
            chosen = set(unfinished)
        order = [t for t in unfinished if t in chosen]
        run_id, root_id = unit.run_id, state.root_task_id
        asked_for = set(task_ids or ())

        def cancel_tasks(tx: Tx) -> None:
            for task_id in order:
                reason = (
                    "cancelled"
                    if task_id in asked_for or whole
                    else "a task it needs was cancelled"
                )
                TaskRegistry.transition_in(tx, run_id, task_id, TaskStatus.CANCELLED, reason=reason)
            if whole:
                TaskRegistry.transition_in(
                    tx, run_id, root_id, TaskStatus.CANCELLED, reason="the session was cancelled"
                )

        unit.do(cancel_tasks)
        runs = {t: run for t, run in state.runs.items() if t not in chosen}
        new_state = state.model_copy(
            update={
                "runs": runs,
                "planned": True,
                "cancelled": [*state.cancelled, *order],
                "finished": [*state.finished, *order],
            }
        )
        return new_state, chosen | ({root_id} if whole else set())

    # -- the nodes ----------------------------------------------------------------------------

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
        time_left = remaining_s(
            [
                (self.session.budget, state.spent()),
                (self._task_budget(state, task_id), run.spent()),
            ]
        )
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
        try:
            workspace = await self._workspace_of(state, task_id, open_own=True)
        except WorkspaceError as error:
            reason = f"its worktree could not be opened: {error}"
            return {"outcomes": [], **self._fail_task(unit, state, task_id, reason)}
        opened = self._note_opened(unit, state, task_id, workspace)
        return {**await self._calls(state, task_id, unit, workspace), **opened}

    async def _calls(
        self, state: TeamState, task_id: str, unit: Unit, workspace: Workspace | None
    ) -> JsonObject:
        """Run the task's next batch of tool calls in `workspace` (None: the directory given,
        without snapshots)."""
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
            if any(
                rule.agent == agent.name
                and rule.tool == call.name
                and rule.subject == _subject(call.name, call.arguments)
                for rule in state.remembered
            ):
                answers[call.id] = True
                continue
            risk = decision.risk if isinstance(decision.risk, int) else round(decision.risk * 100)
            return self._ask(unit, task_id, agent, call, "guardrail", risk, decision.reasons)
        refused = [c for c in batch if answers.get(c.id) is False]
        runnable = [c for c in batch if answers.get(c.id) is not False]
        writes = any(
            (tool := executor.tool(c.name)) is not None and not tool.read_only for c in runnable
        )
        names = ", ".join(c.name for c in runnable)
        if writes:
            await self._snapshot(unit, workspace, task_id, f"before {names}")
        context = self._context(agent, task_id, path)
        outcomes = await run_tools(executor, agent, runnable, context, unit, answers)
        if writes:
            await self._snapshot(unit, workspace, task_id, f"after {names}")
        for call in refused:
            message = "error: not run: a person denied this call; do not retry it as is"
            outcomes.append(ToolOutcome(call.id, call.name, message, False, 0.0))
            unit.emit(
                kinds.TOOL_RESULT,
                {"callId": call.id, "tool": call.name, "ok": False, "output": message},
                task_id=task_id,
                actor=agent.name,
            )
        order = {call.id: index for index, call in enumerate(batch)}
        outcomes.sort(key=lambda outcome: order[outcome.call_id])
        return {"outcomes": [outcome.to_json() for outcome in outcomes]}

    async def _snapshot(
        self, unit: Unit, workspace: Workspace | None, task_id: str, label: str
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

    async def _merge(self, node: Node, state: TeamState, unit: Unit) -> JsonObject:
        """Merge a finished task's worktree into its parent's workspace, once. A conflict,
        or a merge that fails, merges nothing and blocks the parent."""
        task_id = node.task_id
        assert task_id is not None
        assert self.workspaces is not None
        parent_id = state.parents.get(task_id, state.root_task_id)
        branch = f"keel/{self.session.id}.{task_id}"
        payload: JsonObject = {"into": parent_id}
        try:
            parent = await self._workspace_of(state, parent_id)
            assert parent is not None
            # Shielded: a cancellation must not leave the parent's files half merged.
            merged = await asyncio.shield(self.workspaces.merge_task(parent, task_id))
        except WorkspaceError as error:
            reason = f"the change of task {task_id} could not be merged back: {error}"
            return self._block(unit, task_id, reason, {**payload, "branch": branch})
        payload.update(files=list(merged.files), taskCommit=merged.task_commit)
        if merged.snapshot is not None:
            payload["snapshot"] = merged.snapshot.number
        if merged.merged:
            self._task_workspaces.pop(task_id, None)
            unit.emit(kinds.WORKSPACE_MERGED, payload, task_id=task_id)
            return {"merge": {"merged": True, **payload}}
        payload.update(branch=branch, worktree=state.worktrees.get(task_id, ""))
        whose = "the session's" if parent_id == state.root_task_id else f"task {parent_id}'s"
        reason = (
            f"the change of task {task_id} conflicts with {whose} files in "
            f"{', '.join(merged.files)}; nothing was merged"
        )
        artifact = await self._keep(
            unit,
            parent_id,
            f"merge-conflict-{task_id}.patch",
            f"{reason}.\nThe task's work: branch {branch}, worktree {payload['worktree']}.\n"
            f"Both sides, from {whose} files to the merge with conflict markers:\n\n"
            f"{merged.conflict}",
        )
        if artifact is not None:
            payload["artifactId"] = artifact
            reason += f"; the conflict is artifact {artifact}"
        return self._block(unit, task_id, f"{reason}; the task's work is on {branch}", payload)

    def _block(self, unit: Unit, task_id: str, reason: str, payload: JsonObject) -> JsonObject:
        """Block the task the merge of `task_id` was for; return the merge node's result."""
        run_id, blocked = unit.run_id, str(payload["into"])

        def block(tx: Tx) -> None:
            if TaskRegistry.get_in(tx, blocked).status is TaskStatus.RUNNING:
                TaskRegistry.transition_in(tx, run_id, blocked, TaskStatus.BLOCKED, reason=reason)

        unit.do(block)
        unit.emit(kinds.WORKSPACE_MERGE_CONFLICT, {**payload, "reason": reason}, task_id=task_id)
        return {"merge": {"merged": False, **payload, "reason": reason}}

    async def _keep(self, unit: Unit, task_id: str, name: str, text: str) -> str | None:
        """Keep `text` as the session's artifact `name`, linked to the task, once (a node
        run again after a crash finds it); its id, or None without a blackboard."""
        if self.blackboard is None:
            return None
        store = self.blackboard.artifacts
        for found in await store.list(session_id=self.session.id):
            if found.name == name:
                return found.id
        actor = Actor("keel", self.session.id, unit.run_id, MemoryScope.SESSION, task_id=task_id)
        kept = await store.put(text.encode(), name=name, type=ArtifactType.CODE, actor=actor)
        return kept.id

    async def _discard(self, unit: Unit, state: TeamState, task_id: str) -> None:
        """Remove a failed task's worktree, unmerged; its change is kept as an artifact."""
        if task_id not in state.worktrees and task_id not in self._task_workspaces:
            return
        assert self.workspaces is not None
        payload: JsonObject = {}
        try:
            child = self._task_workspaces.pop(task_id, None)
            if child is None:
                parent_id = state.parents.get(task_id, state.root_task_id)
                parent = await self._workspace_of(state, parent_id)
                assert parent is not None
                child = await self.workspaces.find_task(parent, task_id)
            if child is None:
                return
            payload.update(path=str(child.root), branch=child.branch)
            patch = await final_patch(child)
            if patch.strip():
                artifact = await self._keep(unit, task_id, f"task-{task_id}.patch", patch)
                if artifact is not None:
                    payload["artifactId"] = artifact
            await self.workspaces.discard_task(child)
        except WorkspaceError:
            return  # what is left goes with the session (`keel delete`, prune)
        unit.emit(kinds.WORKSPACE_TASK_DISCARDED, payload, task_id=task_id)

    def _reduce_merge(
        self, state: TeamState, task_id: str, result: JsonObject, elapsed: float
    ) -> TeamState:
        """The task is finished: merged, it answers as any task does; not merged, its
        parent is blocked and told why."""
        merge = result["merge"]
        text = state.merging.get(task_id, "")
        update: dict[str, object] = {
            "merging": {t: answer for t, answer in state.merging.items() if t != task_id},
            "finished": [*state.finished, task_id],
            "elapsed_ms": state.elapsed_ms + elapsed,
        }
        if merge["merged"]:
            update["outputs"] = {**state.outputs, task_id: text}
            return answer_parent(state.model_copy(update=update), task_id, text)
        into, reason = str(merge["into"]), str(merge["reason"])
        earlier = state.blocked.get(into)
        update["blocked"] = {**state.blocked, into: f"{earlier}; {reason}" if earlier else reason}
        return answer_parent(state.model_copy(update=update), task_id, f"error: {reason}")

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
        run = state.runs[task_id]
        budget = remaining(
            [
                (self.session.budget, state.spent()),
                (self._task_budget(state, task_id), run.spent()),
            ]
        )
        agents = list(self.agents.values())
        return delegate(state, agents, agent, call, unit, task_id, budget)

    def _reduce_plan(self, state: TeamState, result: JsonObject, elapsed: float) -> TeamState:
        if "error" in result:
            return state.model_copy(update={"error": result["error"], "planned": True})
        planned = result["tasks"]
        if "agent" in result:
            state = state.charged(
                result["agent"],
                state.root_task_id,
                Usage.model_validate(result.get("usage", {})),
                elapsed,
            )
        else:
            state = state.model_copy(update={"elapsed_ms": state.elapsed_ms + elapsed})
        for charge in result.get("routerCharges", []):
            usage = Usage.model_validate(charge["usage"])
            state = state.charged(charge["agent"], state.root_task_id, usage, 0.0)
        return state.model_copy(
            update={
                "planned": True,
                "order": [t["id"] for t in planned],
                "depends": {t["id"]: t["dependsOn"] for t in planned},
                "goals": {t["id"]: t["goal"] for t in planned},
                "assigned": {t["id"]: t["agent"] for t in planned},
                "reviews": [t["id"] for t in planned if t["role"] == REVIEWER_ROLE],
            }
        )

    async def _plan(self, state: TeamState, unit: Unit) -> JsonObject:
        planner = self._by_role(PLANNER_ROLE)
        root_id = state.root_task_id
        result: JsonObject = {}
        special = {PLANNER_ROLE, REVIEWER_ROLE, ROUTER_ROLE}
        others = sorted({a.role for a in self.agents.values()} - special)
        if planner is None:
            first = next(
                (a for a in self.agents.values() if a.role not in special),
                None,
            )
            if first is None:
                raise PlanError("the session has no agent to do its goal; register a worker")
            plan = Plan(tasks=[PlannedTask(goal=self.session.goal, role=first.role)])
            source = "no planner: the goal is one task, for the first agent listed"
        else:
            prompt = (
                f"Goal: {self.session.goal}\n\nRoles you can assign: {', '.join(others)}.\n"
                f"{PLAN_FORMAT}"
            )
            messages = [Message(role="user", content=prompt)]
            if planner.instructions:
                messages.insert(0, Message(role="system", content=planner.instructions))
            turn = await call_model(
                planner, self._model(planner), messages, [], unit, root_id, None
            )
            result = {"agent": planner.name, "usage": turn.response.usage.model_dump()}
            plan = parse_plan(turn.response.message.content)
            source = f"planner {planner.name}"
        charges: list[JsonObject] = []
        tasks = await self._route(plan, unit, root_id, source, charges)
        return {**result, "tasks": tasks, "routerCharges": charges}

    async def _choose(
        self,
        item: PlannedTask,
        load: dict[str, int],
        unit: Unit,
        root_id: str,
        charges: list[JsonObject],
    ) -> Route:
        """The rules' choice; when they find no one, the router agent's."""
        agents = list(self.agents.values())
        try:
            return route(item.role, agents, load, item.capabilities)
        except NoRoute:
            router = self._by_role(ROUTER_ROLE)
            if router is None:
                raise
        prompt = router_prompt(item.goal, item.role, item.capabilities, agents)
        messages = [Message(role="user", content=prompt)]
        turn = await call_model(router, self._model(router), messages, [], unit, root_id, None)
        charges.append({"agent": router.name, "usage": turn.response.usage.model_dump()})
        chosen = read_router_answer(turn.response.message.content, agents)
        return Route(chosen, f"router {router.name} chose it (no agent matched the rules)")

    async def _route(
        self, plan: Plan, unit: Unit, root_id: str, source: str, charges: list[JsonObject]
    ) -> list[JsonObject]:
        load: dict[str, int] = {}
        planned: list[JsonObject] = []
        reasons: list[str] = []
        ids = [new_id("t") for _ in plan.tasks]
        for index, item in enumerate(plan.tasks):
            chosen = await self._choose(item, load, unit, root_id, charges)
            load[chosen.agent.name] = load.get(chosen.agent.name, 0) + 1
            planned.append(
                {
                    "id": ids[index],
                    "goal": item.goal,
                    "role": item.role,
                    "agent": chosen.agent.name,
                    "dependsOn": [ids[needed] for needed in plan.dependencies(index)],
                }
            )
            reasons.append(chosen.reason)
        reviewer = self._by_role(REVIEWER_ROLE)
        if reviewer is not None:
            goal = f"Review the results of: {self.session.goal}"
            planned.append(
                {
                    "id": new_id("t"),
                    "goal": goal,
                    "role": REVIEWER_ROLE,
                    "agent": reviewer.name,
                    "dependsOn": list(ids),
                }
            )
            reasons.append(f"the session's reviewer ({REVIEWER_ROLE})")
        session_id = self.session.id

        def create_tasks(tx: Tx) -> None:
            for task in planned:
                TaskRegistry.create_in(
                    tx,
                    unit.run_id,
                    session_id=session_id,
                    goal=task["goal"],
                    parent_id=root_id,
                    assigned_agent=task["agent"],
                    input={"role": task["role"]},
                    task_id=task["id"],
                )

        unit.do(create_tasks)
        unit.emit(kinds.PLAN_CREATED, {"source": source, "tasks": planned}, task_id=root_id)
        for task, reason in zip(planned, reasons, strict=True):
            unit.emit(
                kinds.ROUTE_DECIDED, {"agent": task["agent"], "reason": reason}, task_id=task["id"]
            )
        return planned
