"""A team session: a planner splits the goal into sub-tasks, workers do them one by one,
a reviewer checks the results. Each step is a node of the run loop.

Without a planner the goal is a single task; without a reviewer the workers' answers are
the final answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from keel.errors import ModelError, PlanError
from keel.events import kinds
from keel.ids import new_id
from keel.models import Model, ModelSettings, Usage, resolve_model
from keel.orchestrator.loop import Flow, Node, Outcome, Unit
from keel.orchestrator.planner import PLAN_FORMAT, Plan, PlannedTask, parse_plan
from keel.orchestrator.router import route
from keel.orchestrator.turn import agent_turn
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import AgentDefinition, JsonObject, Session, SessionStatus, TaskStatus

PLANNER_ROLE = "planner"
REVIEWER_ROLE = "reviewer"
WORKER_ROLE = "worker"


class TeamState(BaseModel):
    root_task_id: str
    planned: bool = False
    order: list[str] = Field(default_factory=list)
    finished: list[str] = Field(default_factory=list)
    goals: dict[str, str] = Field(default_factory=dict)
    assigned: dict[str, str] = Field(default_factory=dict)
    reviews: list[str] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)
    usage: dict[str, Usage] = Field(default_factory=dict)
    error: str | None = None

    def total_usage(self) -> Usage:
        total = Usage()
        for usage in self.usage.values():
            total = total + usage
        return total


def _with_usage(state: TeamState, agent: str, result: JsonObject) -> dict[str, Usage]:
    usage = dict(state.usage)
    if "usage" in result:
        usage[agent] = usage.get(agent, Usage()) + Usage.model_validate(result["usage"])
    return usage


class TeamFlow(Flow[TeamState]):
    state_type = TeamState

    def __init__(
        self,
        session: Session,
        agents: Sequence[AgentDefinition],
        settings: ModelSettings | None = None,
    ) -> None:
        self.session = session
        self.agents = {agent.name: agent for agent in agents}
        self._settings = settings or ModelSettings()
        self._models: dict[str, Model] = {}

    def _by_role(self, role: str) -> AgentDefinition | None:
        matching = sorted((a for a in self.agents.values() if a.role == role), key=lambda a: a.name)
        return matching[0] if matching else None

    def _model(self, agent: AgentDefinition) -> Model:
        if agent.name not in self._models:
            self._models[agent.name] = resolve_model(agent.model, self._settings)
        return self._models[agent.name]

    # -- the flow ------------------------------------------------------------------------

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

    def next(self, state: TeamState) -> Node | None:
        if state.error is not None:
            return None
        if not state.planned:
            return Node("plan", "plan", state.root_task_id)
        for task_id in state.order:
            if task_id not in state.finished:
                kind = "review" if task_id in state.reviews else "task"
                return Node(f"{kind}:{task_id}", kind, task_id)
        return None

    def enter(self, node: Node, state: TeamState, unit: Unit) -> None:
        if node.kind in ("task", "review") and node.task_id:
            task_id = node.task_id
            unit.do(
                lambda tx: TaskRegistry.transition_in(tx, unit.run_id, task_id, TaskStatus.RUNNING)
            )

    async def run(self, node: Node, state: TeamState, unit: Unit) -> JsonObject:
        try:
            if node.kind == "plan":
                return await self._plan(state, unit)
            return await self._work(node, state, unit)
        except (ModelError, PlanError) as error:
            return {"error": str(error)}

    def reduce(self, state: TeamState, node: Node, result: JsonObject) -> TeamState:
        agent = result.get("agent", "")
        if "error" in result and node.kind == "plan":
            return state.model_copy(update={"error": result["error"], "planned": True})
        if node.kind == "plan":
            planned = result["tasks"]
            return state.model_copy(
                update={
                    "planned": True,
                    "order": [t["id"] for t in planned],
                    "goals": {t["id"]: t["goal"] for t in planned},
                    "assigned": {t["id"]: t["agent"] for t in planned},
                    "reviews": [t["id"] for t in planned if t["role"] == REVIEWER_ROLE],
                    "usage": _with_usage(state, agent, result),
                }
            )
        assert node.task_id is not None
        update: dict[str, object] = {
            "finished": [*state.finished, node.task_id],
            "usage": _with_usage(state, agent, result),
        }
        if "error" in result:
            update["error"] = f"task {node.task_id} failed: {result['error']}"
        else:
            update["outputs"] = {**state.outputs, node.task_id: result["text"]}
        return state.model_copy(update=update)

    def outcome(self, state: TeamState, unit: Unit) -> Outcome:
        root_id, run_id = state.root_task_id, unit.run_id
        usage = state.total_usage()
        summary: JsonObject = {
            "tasks": len(state.order),
            "usage": {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens},
        }
        if state.error is not None:
            error = state.error
            unfinished = [t for t in state.order if t not in state.finished]

            def fail(tx: Tx) -> None:
                for task_id in unfinished:
                    TaskRegistry.transition_in(
                        tx, run_id, task_id, TaskStatus.CANCELLED, reason="the session failed"
                    )
                TaskRegistry.transition_in(tx, run_id, root_id, TaskStatus.FAILED, reason=error)

            unit.do(fail)
            return Outcome(SessionStatus.FAILED, None, {"reason": error, **summary})
        answer = self._final_answer(state)
        unit.do(
            lambda tx: TaskRegistry.transition_in(
                tx, run_id, root_id, TaskStatus.DONE, output={"text": answer}
            )
        )
        return Outcome(SessionStatus.DONE, answer, {"finalAnswer": answer, **summary})

    # -- the nodes ------------------------------------------------------------------------

    def _final_answer(self, state: TeamState) -> str:
        if state.reviews:
            return state.outputs[state.reviews[-1]]
        return "\n".join(state.outputs[t] for t in state.order)

    async def _plan(self, state: TeamState, unit: Unit) -> JsonObject:
        planner = self._by_role(PLANNER_ROLE)
        root_id = state.root_task_id
        result: JsonObject = {}
        if planner is None:
            workers = [
                a for a in self.agents.values() if a.role not in (PLANNER_ROLE, REVIEWER_ROLE)
            ]
            if not workers:
                raise PlanError("the session has no agent to do its goal; register a worker")
            plan = Plan(tasks=[PlannedTask(goal=self.session.goal, role=workers[0].role)])
            source = "no planner: the goal is one task"
        else:
            roles = sorted({a.role for a in self.agents.values()} - {PLANNER_ROLE, REVIEWER_ROLE})
            prompt = (
                f"Goal: {self.session.goal}\n\nRoles you can assign: {', '.join(roles)}.\n"
                f"{PLAN_FORMAT}"
            )
            turn = await agent_turn(planner, self._model(planner), prompt, unit, root_id)
            result = {"agent": planner.name, "usage": turn.usage.model_dump()}
            plan = parse_plan(turn.text)
            source = f"planner {planner.name}"
        load: dict[str, int] = {}
        planned: list[JsonObject] = []
        routes: list[tuple[str, str, str]] = []
        agents = list(self.agents.values())
        for item in plan.tasks:
            chosen = route(item.role, agents, load)
            load[chosen.agent.name] = load.get(chosen.agent.name, 0) + 1
            task_id = new_id("t")
            planned.append(
                {"id": task_id, "goal": item.goal, "role": item.role, "agent": chosen.agent.name}
            )
            routes.append((task_id, chosen.agent.name, chosen.reason))
        reviewer = self._by_role(REVIEWER_ROLE)
        if reviewer is not None:
            task_id = new_id("t")
            goal = f"Review the results of: {self.session.goal}"
            planned.append(
                {"id": task_id, "goal": goal, "role": REVIEWER_ROLE, "agent": reviewer.name}
            )
            routes.append((task_id, reviewer.name, f"the session's reviewer ({REVIEWER_ROLE})"))
        session_id = self.session.id

        def create_tasks(tx: Tx) -> None:
            for item in planned:
                TaskRegistry.create_in(
                    tx,
                    unit.run_id,
                    session_id=session_id,
                    goal=item["goal"],
                    parent_id=root_id,
                    assigned_agent=item["agent"],
                    input={"role": item["role"]},
                    task_id=item["id"],
                )

        unit.do(create_tasks)
        unit.emit(kinds.PLAN_CREATED, {"source": source, "tasks": planned}, task_id=root_id)
        for task_id, agent_name, reason in routes:
            unit.emit(kinds.ROUTE_DECIDED, {"agent": agent_name, "reason": reason}, task_id=task_id)
        return {**result, "tasks": planned}

    async def _work(self, node: Node, state: TeamState, unit: Unit) -> JsonObject:
        task_id = node.task_id
        assert task_id is not None
        agent = self.agents[state.assigned[task_id]]
        goal = state.goals[task_id]
        if node.kind == "review":
            results = "\n".join(
                f"- {state.goals[t]}: {state.outputs[t]}" for t in state.order if t in state.outputs
            )
            prompt = f"Goal: {goal}\n\nResults to review:\n{results}"
        else:
            prompt = f"Goal: {goal}\n\nThis is part of the session goal: {self.session.goal}"
        run_id = unit.run_id
        try:
            turn = await agent_turn(agent, self._model(agent), prompt, unit, task_id)
        except ModelError as error:
            reason = str(error)
            unit.do(
                lambda tx: TaskRegistry.transition_in(
                    tx, run_id, task_id, TaskStatus.FAILED, reason=reason
                )
            )
            return {"agent": agent.name, "error": reason}
        text = turn.text
        unit.do(
            lambda tx: TaskRegistry.transition_in(
                tx, run_id, task_id, TaskStatus.DONE, output={"text": text}
            )
        )
        return {"agent": agent.name, "text": text, "usage": turn.usage.model_dump()}
