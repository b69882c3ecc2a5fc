"""The `plan` node of a team session: the planner agent splits the goal into sub-tasks,
each routed to an agent by role (by the rules, else by the router agent), and a review by
the reviewer, if the session has one, comes last. Without a planner the goal is a single
task for the first worker listed.

The keys of the node's result are part of the checkpoint format: a resumed session
replays them from the log (`reduce_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from keel.errors import PlanError
from keel.events import kinds
from keel.ids import new_id
from keel.models import Message, RetryingModel, Usage
from keel.orchestrator.planner import PLAN_FORMAT, Plan, PlannedTask, parse_plan
from keel.orchestrator.router import (
    ROUTER_ROLE,
    NoRoute,
    Route,
    read_router_answer,
    route,
    router_prompt,
)
from keel.orchestrator.team_state import TeamState
from keel.orchestrator.turn import call_model
from keel.orchestrator.unit import Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import AgentDefinition, JsonObject, Session

PLANNER_ROLE = "planner"
REVIEWER_ROLE = "reviewer"

ModelOf = Callable[[AgentDefinition], RetryingModel]
"""The model an agent calls (its retry policy applied)."""


def by_role(agents: Mapping[str, AgentDefinition], role: str) -> AgentDefinition | None:
    """The agent with `role` (the first by name, if several have it)."""
    matching = sorted((a for a in agents.values() if a.role == role), key=lambda a: a.name)
    return matching[0] if matching else None


async def plan(
    session: Session,
    agents: Mapping[str, AgentDefinition],
    model_of: ModelOf,
    unit: Unit,
    root_id: str,
) -> JsonObject:
    """Run the plan node: the tasks, routed, created in the registry. Raises ModelError or
    PlanError (the session then fails)."""
    planner = by_role(agents, PLANNER_ROLE)
    result: JsonObject = {}
    special = {PLANNER_ROLE, REVIEWER_ROLE, ROUTER_ROLE}
    others = sorted({a.role for a in agents.values()} - special)
    if planner is None:
        first = next(
            (a for a in agents.values() if a.role not in special),
            None,
        )
        if first is None:
            raise PlanError("the session has no agent to do its goal; register a worker")
        goal_plan = Plan(tasks=[PlannedTask(goal=session.goal, role=first.role)])
        source = "no planner: the goal is one task, for the first agent listed"
    else:
        prompt = (
            f"Goal: {session.goal}\n\nRoles you can assign: {', '.join(others)}.\n{PLAN_FORMAT}"
        )
        messages = [Message(role="user", content=prompt)]
        if planner.instructions:
            messages.insert(0, Message(role="system", content=planner.instructions))
        turn = await call_model(planner, model_of(planner), messages, [], unit, root_id, None)
        result = {"agent": planner.name, "usage": turn.response.usage.model_dump()}
        goal_plan = parse_plan(turn.response.message.content)
        source = f"planner {planner.name}"
    charges: list[JsonObject] = []
    tasks = await _route(goal_plan, session, agents, model_of, unit, root_id, source, charges)
    return {**result, "tasks": tasks, "routerCharges": charges}


def reduce_plan(state: TeamState, result: JsonObject, elapsed: float) -> TeamState:
    """The plan node's result folded in: the tasks, what depends on what, who does each."""
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


async def _choose(
    item: PlannedTask,
    agents: Mapping[str, AgentDefinition],
    model_of: ModelOf,
    load: dict[str, int],
    unit: Unit,
    root_id: str,
    charges: list[JsonObject],
) -> Route:
    """The rules' choice; when they find no one, the router agent's."""
    listed = list(agents.values())
    try:
        return route(item.role, listed, load, item.capabilities)
    except NoRoute:
        router = by_role(agents, ROUTER_ROLE)
        if router is None:
            raise
    prompt = router_prompt(item.goal, item.role, item.capabilities, listed)
    messages = [Message(role="user", content=prompt)]
    turn = await call_model(router, model_of(router), messages, [], unit, root_id, None)
    charges.append({"agent": router.name, "usage": turn.response.usage.model_dump()})
    chosen = read_router_answer(turn.response.message.content, listed)
    return Route(chosen, f"router {router.name} chose it (no agent matched the rules)")


async def _route(
    goal_plan: Plan,
    session: Session,
    agents: Mapping[str, AgentDefinition],
    model_of: ModelOf,
    unit: Unit,
    root_id: str,
    source: str,
    charges: list[JsonObject],
) -> list[JsonObject]:
    load: dict[str, int] = {}
    planned: list[JsonObject] = []
    reasons: list[str] = []
    ids = [new_id("t") for _ in goal_plan.tasks]
    for index, item in enumerate(goal_plan.tasks):
        chosen = await _choose(item, agents, model_of, load, unit, root_id, charges)
        load[chosen.agent.name] = load.get(chosen.agent.name, 0) + 1
        planned.append(
            {
                "id": ids[index],
                "goal": item.goal,
                "role": item.role,
                "agent": chosen.agent.name,
                "dependsOn": [ids[needed] for needed in goal_plan.dependencies(index)],
            }
        )
        reasons.append(chosen.reason)
    reviewer = by_role(agents, REVIEWER_ROLE)
    if reviewer is not None:
        goal = f"Review the results of: {session.goal}"
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
    session_id = session.id

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
