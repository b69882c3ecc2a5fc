from __future__ import annotations

import json
from collections import Counter
from typing import Any

from keel import Keel
from keel.events import kinds
from keel.models import register_script
from keel.types import SessionStatus, TaskStatus


async def test_a_team_session_plans_works_reviews_and_ends_done(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session("Add a flag, write tests and update the docs", team)
    finished = await keel.run(session.id)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer is not None
    assert finished.final_answer.startswith("Reviewed 3 results")
    (root,) = await keel.tasks.tree(session.id)
    assert root.task.status is TaskStatus.DONE
    assert root.task.assigned_agent == "planner"
    children = [(c.task.goal, c.task.assigned_agent, c.task.status) for c in root.children]
    assert children == [
        ("Add a flag", "builder", TaskStatus.DONE),
        ("Write tests", "tester", TaskStatus.DONE),
        ("Update the docs", "builder", TaskStatus.DONE),
        (f"Review the results of: {session.goal}", "reviewer", TaskStatus.DONE),
    ]
    assert root.children[0].task.output == {
        "text": "Done: add a flag, and checked against the session goal."
    }


async def test_every_node_and_state_change_is_an_event_in_order(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    session = await keel.create_session("Build it and ship it", team)
    await keel.run(session.id)
    events = await keel.events.read(session.id)
    types = [e.type for e in events]

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert types[:2] == [kinds.SESSION_CREATED, kinds.SESSION_STARTED]
    assert types[-1] == kinds.SESSION_COMPLETED
    entered = [e.payload["node"] for e in events if e.type == kinds.NODE_ENTER]
    exited = [e.payload["node"] for e in events if e.type == kinds.NODE_EXIT]
    assert entered == exited
    assert entered[0] == "plan"
    assert len(entered) == 4  # plan, two tasks, review
    calls = [e for e in events if e.type == kinds.MODEL_CALL]
    assert [c.payload["agent"] for c in calls] == ["planner", "builder", "tester", "reviewer"]
    assert all(c.payload["inputTokens"] > 0 and c.payload["outputTokens"] > 0 for c in calls)
    statuses = Counter((e.task_id, e.payload["to"]) for e in events if e.type == kinds.TASK_STATUS)
    assert all(count == 1 for count in statuses.values())
    usage = events[-1].payload["usage"]
    assert usage["inputTokens"] == sum(c.payload["inputTokens"] for c in calls)


async def test_without_a_planner_or_reviewer_the_goal_is_one_task(keel: Keel) -> None:
    session = await keel.create_session(
        "Fix the bug", [{"name": "solo", "role": "worker", "model": "scripted:worker"}]
    )
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "Done: fix the bug, and checked against the session goal."
    plan = [e for e in await keel.events.read(session.id) if e.type == kinds.PLAN_CREATED]
    assert plan[0].payload["source"].startswith("no planner: the goal is one task")


async def test_a_plan_that_is_not_json_fails_the_session_with_the_reason(keel: Keel) -> None:
    register_script("rambler", ["I think we should probably start by looking around."])
    session = await keel.create_session(
        "Do it",
        [
            {"name": "planner", "role": "planner", "model": "scripted:rambler"},
            {"name": "w", "role": "worker", "model": "scripted:worker"},
        ],
    )
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.FAILED
    last = (await keel.events.read(session.id))[-1]
    assert last.type == kinds.SESSION_FAILED
    assert "the planner's answer is not JSON" in last.payload["reason"]
    (root,) = await keel.tasks.tree(session.id)
    assert root.task.status is TaskStatus.FAILED


async def test_a_plan_naming_a_role_nobody_has_fails_with_the_roles_there_are(
    keel: Keel,
) -> None:
    register_script("designer-planner", ['{"tasks": [{"goal": "Draw it", "role": "designer"}]}'])
    session = await keel.create_session(
        "Do it",
        [
            {"name": "planner", "role": "planner", "model": "scripted:designer-planner"},
            {"name": "w", "role": "worker", "model": "scripted:worker"},
        ],
    )
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.FAILED
    reason = (await keel.events.read(session.id))[-1].payload["reason"]
    assert "no agent has the role 'designer' (registered roles: planner, worker)" in reason


async def test_a_model_that_runs_out_of_replies_fails_its_task_and_the_session(
    keel: Keel,
) -> None:
    register_script("empty", [])
    session = await keel.create_session(
        "Do it", [{"name": "w", "role": "worker", "model": "scripted:empty"}]
    )
    finished = await keel.run(session.id)
    assert finished.status is SessionStatus.FAILED
    tasks = {t.goal: t.status for t in await keel.tasks.list(session.id)}
    assert set(tasks.values()) == {TaskStatus.FAILED}


async def test_routing_matches_capabilities_and_asks_the_router_when_rules_cannot(
    keel: Keel,
) -> None:
    register_script(
        "capable-planner",
        [
            json.dumps(
                {
                    "tasks": [
                        {"goal": "Write SQL", "role": "worker", "capabilities": ["sql"]},
                        {"goal": "Ask the designer about colours", "role": "artist"},
                    ]
                }
            )
        ],
    )
    session = await keel.create_session(
        "Build it",
        [
            {"name": "planner", "role": "planner", "model": "scripted:capable-planner"},
            {"name": "generalist", "role": "worker", "model": "scripted:worker"},
            {"name": "dba", "role": "worker", "model": "scripted:worker", "capabilities": ["sql"]},
            {"name": "designer", "role": "design", "model": "scripted:worker"},
            {"name": "dispatch", "role": "router", "model": "scripted:router"},
        ],
    )
    finished = await keel.run(session.id)
    events = await keel.events.read(session.id)
    routes = {e.task_id: e.payload for e in events if e.type == kinds.ROUTE_DECIDED}
    goals = {e.task_id: e.payload["goal"] for e in events if e.type == kinds.TASK_CREATED}
    by_goal = {goals[t]: r for t, r in routes.items()}
    assert finished.status is SessionStatus.DONE
    assert by_goal["Write SQL"]["agent"] == "dba"
    assert "with sql" in by_goal["Write SQL"]["reason"]
    assert by_goal["Ask the designer about colours"]["agent"] == "designer"
    assert by_goal["Ask the designer about colours"]["reason"].startswith("router dispatch")
