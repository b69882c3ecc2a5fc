"""The task registry: the task tree of each session and its status state machine.

Every change is written together with its event in one transaction. An illegal transition
raises `IllegalTransition` and changes nothing.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from keel.errors import IllegalTransition, TaskNotFound
from keel.events import EventLog, NewEvent, dump_json, kinds, now_us
from keel.ids import new_id
from keel.store import Engine, Row, Tx
from keel.types import Artifact, JsonObject, Task, TaskStatus

ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.BLOCKED, TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.BLOCKED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.DONE: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}

_COLUMNS = (
    "id, session_id, parent_id, assigned_agent, goal, status, input, output, artifacts, "
    "created_at, updated_at"
)


def check_transition(task_id: str, current: TaskStatus, to: TaskStatus) -> None:
    allowed = ALLOWED[current]
    if to not in allowed:
        raise IllegalTransition(
            f"task {task_id}", current.value, to.value, sorted(s.value for s in allowed)
        )


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _task(row: Row) -> Task:
    (task_id, session_id, parent_id, agent, goal, status, data, output, artifacts, c, u) = row
    return Task(
        id=task_id,
        session_id=session_id,
        parent_id=parent_id,
        assigned_agent=agent,
        goal=goal,
        status=TaskStatus(status),
        input=json.loads(data),
        output=json.loads(output) if output is not None else None,
        artifacts=[Artifact.model_validate(a) for a in json.loads(artifacts)],
        created_at=_time(c),
        updated_at=_time(u),
    )


@dataclass
class TaskNode:
    """A task and its children, in creation order."""

    task: Task
    children: list[TaskNode] = field(default_factory=list)

    def walk(self, depth: int = 0) -> list[tuple[int, Task]]:
        found = [(depth, self.task)]
        for child in self.children:
            found.extend(child.walk(depth + 1))
        return found


class TaskRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- inside a transaction -----------------------------------------------------------

    @staticmethod
    def create_in(
        tx: Tx,
        run_id: str,
        *,
        session_id: str,
        goal: str,
        parent_id: str | None = None,
        assigned_agent: str | None = None,
        input: JsonObject | None = None,
        task_id: str | None = None,
    ) -> Task:
        task = Task(
            id=task_id or new_id("t"),
            session_id=session_id,
            parent_id=parent_id,
            assigned_agent=assigned_agent,
            goal=goal,
            input=input or {},
        )
        stamp = now_us()
        tx.lock(f"tasks:{session_id}")
        row = tx.fetchone(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM tasks WHERE session_id = ?", (session_id,)
        )
        position = int(row[0]) if row else 0
        tx.execute(
            "INSERT INTO tasks (id, session_id, parent_id, position, assigned_agent, goal, "
            "status, input, output, artifacts, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, '[]', ?, ?)",
            (
                task.id,
                session_id,
                parent_id,
                position,
                assigned_agent,
                goal,
                task.status.value,
                dump_json(task.input),
                stamp,
                stamp,
            ),
        )
        payload: JsonObject = {"goal": goal, "parentId": parent_id, "assignedAgent": assigned_agent}
        EventLog.append_in(
            tx, session_id, run_id, [NewEvent(kinds.TASK_CREATED, "keel", payload, task.id)]
        )
        return task

    @staticmethod
    def get_in(tx: Tx, task_id: str) -> Task:
        row = tx.fetchone(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        if row is None:
            raise TaskNotFound(f"no task '{task_id}'")
        return _task(row)

    @staticmethod
    def transition_in(
        tx: Tx,
        run_id: str,
        task_id: str,
        to: TaskStatus,
        *,
        output: JsonObject | None = None,
        reason: str | None = None,
        actor: str = "keel",
    ) -> Task:
        tx.lock(f"task:{task_id}")
        task = TaskRegistry.get_in(tx, task_id)
        check_transition(task_id, task.status, to)
        stamp = now_us()
        if output is not None:
            tx.execute(
                "UPDATE tasks SET status = ?, output = ?, updated_at = ? WHERE id = ?",
                (to.value, dump_json(output), stamp, task_id),
            )
        else:
            tx.execute(
                "UPDATE tasks SET status = ?, updated_at = ? WHERE id = ?",
                (to.value, stamp, task_id),
            )
        payload: JsonObject = {"from": task.status.value, "to": to.value}
        if reason:
            payload["reason"] = reason
        EventLog.append_in(
            tx, task.session_id, run_id, [NewEvent(kinds.TASK_STATUS, actor, payload, task_id)]
        )
        return task.model_copy(update={"status": to, "output": output or task.output})

    @staticmethod
    def assign_in(tx: Tx, task_id: str, agent: str) -> None:
        if not tx.execute(
            "UPDATE tasks SET assigned_agent = ?, updated_at = ? WHERE id = ?",
            (agent, now_us(), task_id),
        ):
            raise TaskNotFound(f"no task '{task_id}'")

    @staticmethod
    def cancel_in(tx: Tx, run_id: str, task_id: str, reason: str, actor: str = "keel") -> list[str]:
        """Cancel a task and every descendant that has not ended; return the ids cancelled."""
        root = TaskRegistry.get_in(tx, task_id)
        if root.status.is_final:
            check_transition(task_id, root.status, TaskStatus.CANCELLED)
        rows = tx.fetchall(
            "SELECT id, parent_id, status FROM tasks WHERE session_id = ? ORDER BY position",
            (root.session_id,),
        )
        children: dict[str | None, list[tuple[str, str]]] = {}
        for child_id, parent_id, status in rows:
            children.setdefault(parent_id, []).append((child_id, status))
        cancelled: list[str] = []
        pending = [(root.id, root.status.value)]
        while pending:
            current, status = pending.pop(0)
            if not TaskStatus(status).is_final:
                TaskRegistry.transition_in(
                    tx, run_id, current, TaskStatus.CANCELLED, reason=reason, actor=actor
                )
                cancelled.append(current)
            pending.extend(children.get(current, []))
        return cancelled

    # -- on their own --------------------------------------------------------------------

    async def create(self, run_id: str, *, session_id: str, goal: str, **fields: object) -> Task:
        return await self._engine.write(
            lambda tx: self.create_in(tx, run_id, session_id=session_id, goal=goal, **fields)  # type: ignore[arg-type]
        )

    async def transition(
        self, run_id: str, task_id: str, to: TaskStatus, *, reason: str | None = None
    ) -> Task:
        return await self._engine.write(
            lambda tx: self.transition_in(tx, run_id, task_id, to, reason=reason)
        )

    async def cancel(
        self, run_id: str, task_id: str, reason: str, actor: str = "user"
    ) -> list[str]:
        return await self._engine.write(
            lambda tx: self.cancel_in(tx, run_id, task_id, reason, actor)
        )

    async def get(self, task_id: str) -> Task:
        return await self._engine.read(lambda tx: self.get_in(tx, task_id))

    async def list(self, session_id: str) -> builtins.list[Task]:
        rows = await self._engine.read(
            lambda tx: tx.fetchall(
                f"SELECT {_COLUMNS} FROM tasks WHERE session_id = ? ORDER BY position",
                (session_id,),
            )
        )
        return [_task(row) for row in rows]

    async def tree(self, session_id: str) -> builtins.list[TaskNode]:
        """The session's task tree: its root tasks, each with its descendants."""
        return build_tree(await self.list(session_id))


def build_tree(tasks: Sequence[Task]) -> list[TaskNode]:
    nodes = {task.id: TaskNode(task) for task in tasks}
    roots: list[TaskNode] = []
    for task in tasks:
        parent = nodes.get(task.parent_id) if task.parent_id else None
        (parent.children if parent else roots).append(nodes[task.id])
    return roots
