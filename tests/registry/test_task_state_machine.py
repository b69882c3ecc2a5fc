from __future__ import annotations

import pytest

from keel import Keel
from keel.errors import IllegalTransition, TaskNotFound
from keel.events import kinds
from keel.registry.tasks import ALLOWED
from keel.types import TaskStatus

S = TaskStatus
LEGAL = [(a, b) for a, targets in ALLOWED.items() for b in targets]
ILLEGAL = [(a, b) for a in S for b in S if b not in ALLOWED[a]]


def test_the_state_machine_is_the_one_in_the_design() -> None:
    assert set(LEGAL) == {
        (S.PENDING, S.RUNNING),
        (S.PENDING, S.CANCELLED),
        (S.RUNNING, S.BLOCKED),
        (S.RUNNING, S.DONE),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.CANCELLED),
        (S.BLOCKED, S.RUNNING),
        (S.BLOCKED, S.CANCELLED),
        (S.BLOCKED, S.FAILED),
    }


PATHS = {
    S.PENDING: [],
    S.RUNNING: [S.RUNNING],
    S.BLOCKED: [S.RUNNING, S.BLOCKED],
    S.DONE: [S.RUNNING, S.DONE],
    S.FAILED: [S.RUNNING, S.FAILED],
    S.CANCELLED: [S.CANCELLED],
}


async def _task_in(keel: Keel, status: TaskStatus) -> tuple[str, str]:
    session = await keel.start_flow("tasks")
    task = await keel.tasks.create(keel.run_id, session_id=session.id, goal="g")
    for step in PATHS[status]:
        await keel.tasks.transition(keel.run_id, task.id, step)
    return session.id, task.id


@pytest.mark.parametrize(("start", "to"), LEGAL)
async def test_a_legal_transition_changes_the_status_and_writes_an_event(
    keel: Keel, start: TaskStatus, to: TaskStatus
) -> None:
    session_id, task_id = await _task_in(keel, start)
    await keel.tasks.transition(keel.run_id, task_id, to, reason="because")
    assert (await keel.tasks.get(task_id)).status is to
    last = (await keel.events.read(session_id))[-1]
    assert last.type == kinds.TASK_STATUS
    assert last.payload == {"from": start.value, "to": to.value, "reason": "because"}


@pytest.mark.parametrize(("start", "to"), ILLEGAL)
async def test_an_illegal_transition_is_refused_and_changes_nothing(
    keel: Keel, start: TaskStatus, to: TaskStatus
) -> None:
    session_id, task_id = await _task_in(keel, start)
    before = await keel.events.last_seq(session_id)
    with pytest.raises(IllegalTransition) as caught:
        await keel.tasks.transition(keel.run_id, task_id, to)
    message = str(caught.value)
    assert f"from '{start.value}' to '{to.value}'" in message
    assert task_id in message
    assert (await keel.tasks.get(task_id)).status is start
    assert await keel.events.last_seq(session_id) == before


async def test_an_unknown_task_is_a_clear_error(keel: Keel) -> None:
    with pytest.raises(TaskNotFound, match="t_missing"):
        await keel.tasks.transition(keel.run_id, "t_missing", TaskStatus.RUNNING)


async def test_cancelling_a_task_cancels_its_unfinished_descendants(keel: Keel) -> None:
    session = await keel.start_flow("tree")
    run = keel.run_id
    root = await keel.tasks.create(run, session_id=session.id, goal="root")
    child = await keel.tasks.create(run, session_id=session.id, goal="a", parent_id=root.id)
    done = await keel.tasks.create(run, session_id=session.id, goal="b", parent_id=root.id)
    grandchild = await keel.tasks.create(run, session_id=session.id, goal="c", parent_id=child.id)
    other = await keel.tasks.create(run, session_id=session.id, goal="other")
    for task_id in (root.id, child.id, done.id):
        await keel.tasks.transition(run, task_id, TaskStatus.RUNNING)
    await keel.tasks.transition(run, done.id, TaskStatus.DONE)
    await keel.tasks.transition(run, child.id, TaskStatus.BLOCKED)

    cancelled = await keel.tasks.cancel(run, root.id, reason="user asked")

    assert cancelled == [root.id, child.id, grandchild.id]
    statuses = {t.id: t.status for t in await keel.tasks.list(session.id)}
    assert statuses[done.id] is TaskStatus.DONE
    assert statuses[other.id] is TaskStatus.PENDING
    assert {statuses[t] for t in cancelled} == {TaskStatus.CANCELLED}


async def test_cancelling_a_finished_task_is_refused(keel: Keel) -> None:
    _, task_id = await _task_in(keel, TaskStatus.DONE)
    with pytest.raises(IllegalTransition, match="'done' is final"):
        await keel.tasks.cancel(keel.run_id, task_id, reason="too late")


async def test_a_session_tree_nests_children_under_parents_in_creation_order(
    keel: Keel,
) -> None:
    session = await keel.start_flow("tree")
    run = keel.run_id
    root = await keel.tasks.create(run, session_id=session.id, goal="root")
    first = await keel.tasks.create(run, session_id=session.id, goal="1", parent_id=root.id)
    await keel.tasks.create(run, session_id=session.id, goal="1.1", parent_id=first.id)
    await keel.tasks.create(run, session_id=session.id, goal="2", parent_id=root.id)
    (tree,) = await keel.tasks.tree(session.id)
    assert [(depth, task.goal) for depth, task in tree.walk()] == [
        (0, "root"),
        (1, "1"),
        (2, "1.1"),
        (1, "2"),
    ]
