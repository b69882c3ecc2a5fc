"""The SDK's task store over Keel's sessions: an A2A task is a session, so nothing of it is
kept twice and nothing is lost when the server restarts.

A task is read from its session: its state from the session's status and pending approvals,
its answer from the session's final answer, its history from the goal. What Keel does not
know, the A2A context a task belongs to and the id of the message that started it, is
recorded once in the session's event log (`a2a.task.opened`). A session without that
record was not started over A2A and is no A2A task.

A write is where the SDK's decisions become Keel's actions: the first write of a task
records it and queues its session for a worker; a write that cancels it cancels the
session. Every other state is Keel's to decide, and the executor only reports what Keel
recorded, so those writes change nothing. A task's version is the sequence number of its
session's last event: a subscriber served from a snapshot goes on from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from a2a.server.cluster import StoredTask, TaskVersion, VersionedTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.types import (
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError, UnsupportedOperationError

from keel.errors import IllegalTransition, SessionNotFound
from keel.events import NewEvent, kinds
from keel.gateway.a2a.callers import caller_of, may_see
from keel.gateway.a2a.progress import (
    TaskRef,
    agent_message,
    answer_artifact,
    approval_message,
    cancel_session,
    pending_approval,
    task_state,
)
from keel.orchestrator import Keel
from keel.types import Session, SessionStatus

log = logging.getLogger("keel.gateway.a2a")

TASK_OPENED = kinds.A2A_TASK_OPENED
"""Event: an A2A client's message started this session as an A2A task (contextId,
messageId). It is written before the session is queued, so it is among its first events."""

RECORD_WITHIN = 10
"""How many of a session's first events are searched for its A2A record."""

LIST_SCAN = 500
"""How many of a caller's newest sessions `ListTasks` looks through."""


@dataclass(frozen=True, slots=True)
class TaskRecord:
    context_id: str
    message_id: str


class EventSeq(TaskVersion):
    """A task's version: the sequence number of its session's last event."""

    __slots__ = ()

    def __init__(self, seq: int) -> None:
        super().__init__(seq)

    @property
    def seq(self) -> int:
        return int(self._value)


def seq_of(version: TaskVersion) -> int:
    return version.seq if isinstance(version, EventSeq) else 0


async def read_record(keel: Keel, session_id: str) -> TaskRecord | None:
    for event in await keel.events.read(session_id, 0, limit=RECORD_WITHIN):
        if event.type == TASK_OPENED:
            return TaskRecord(str(event.payload["contextId"]), str(event.payload["messageId"]))
    return None


class KeelTaskStore(VersionedTaskStore):
    def __init__(self, keel: Keel) -> None:
        self._keel = keel

    async def get(self, task_id: str, context: ServerCallContext) -> StoredTask | None:
        keel = self._keel
        seq = await keel.events.last_seq(task_id)  # first: later events are never missed
        if seq == 0:
            return None
        try:
            session = await keel.sessions.get(task_id)
        except SessionNotFound:
            return None
        if not may_see(caller_of(context), session.user_id):
            return None
        record = await read_record(keel, task_id)
        if record is None:
            return None
        return StoredTask(await self._task(session, record, seq), EventSeq(seq))

    async def save(
        self,
        task: Task,
        *,
        event: Event | None,
        prev: Task | None,
        prev_version: TaskVersion,
        context: ServerCallContext,
    ) -> TaskVersion:
        keel = self._keel
        if await read_record(keel, task.id) is None:
            await self._open(task, context)
        elif task.status.state == TaskState.TASK_STATE_CANCELED:
            caller = caller_of(context)
            actor = caller.user_id if caller else "a2a"
            await cancel_session(keel, task.id, actor=actor, wait_s=0)
        return EventSeq(await keel.events.last_seq(task.id))

    async def _open(self, task: Task, context: ServerCallContext) -> None:
        """Record a new task's context and queue its session (which the request context
        builder created for the message that started it)."""
        keel = self._keel
        caller = caller_of(context)
        try:
            session = await keel.sessions.get(task.id)
        except SessionNotFound:
            raise TaskNotFoundError(f"no session '{task.id}' for this task") from None
        if caller is None or not may_see(caller, session.user_id):
            raise TaskNotFoundError(f"no session '{task.id}' for this task")
        first = task.history[0].message_id if task.history else ""
        payload = {"contextId": task.context_id, "messageId": first}
        opened = NewEvent(TASK_OPENED, caller.user_id, payload)
        await keel.events.append(task.id, keel.run_id, [opened])
        await keel.submit(task.id)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """The caller's A2A tasks, newest first; a page token is the position to go on from."""
        caller = caller_of(context)
        if caller is None:
            return ListTasksResponse()
        keel = self._keel
        tasks: list[Task] = []
        for session in await keel.sessions.list(LIST_SCAN, caller.user_id):
            record = await read_record(keel, session.id)
            if record is None or (params.context_id and record.context_id != params.context_id):
                continue
            seq = await keel.events.last_seq(session.id)
            task = await self._task(session, record, seq)
            if params.status and task.status.state != params.status:
                continue
            if params.HasField("status_timestamp_after") and (
                task.status.timestamp.ToNanoseconds()
                < params.status_timestamp_after.ToNanoseconds()
            ):
                continue
            tasks.append(task)
        start = _position(params.page_token)
        size = params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE
        end = start + size
        return ListTasksResponse(
            tasks=tasks[start:end],
            next_page_token=str(end) if end < len(tasks) else "",
            page_size=size,
            total_size=len(tasks),
        )

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        if await self.get(task_id, context) is None:
            raise TaskNotFoundError
        try:
            await self._keel.delete_session(task_id)
        except IllegalTransition as error:
            raise UnsupportedOperationError(str(error)) from None

    async def _task(self, session: Session, record: TaskRecord, seq: int) -> Task:
        """The task as its session stands: state, status message, answer, first message."""
        ref = TaskRef(session.id, record.context_id)
        approval = None
        if session.status is SessionStatus.RUNNING:
            approval = await pending_approval(self._keel, session.id)
        state = task_state(session.status, waiting=approval is not None)
        status = TaskStatus(state=state, timestamp=session.updated_at)
        artifacts = []
        if approval is not None:
            status.message.CopyFrom(approval_message(ref, approval))
        elif session.status is SessionStatus.DONE and session.final_answer:
            answer = session.final_answer
            status.message.CopyFrom(agent_message(ref, f"{session.id}-answer", answer))
            artifacts.append(answer_artifact(ref, answer))
        elif session.status is SessionStatus.FAILED:
            reason = await self._failure(session.id, seq)
            status.message.CopyFrom(agent_message(ref, f"{session.id}-end", reason))
        goal = Message(
            message_id=record.message_id,
            context_id=record.context_id,
            task_id=session.id,
            role=Role.ROLE_USER,
            parts=[Part(text=session.goal)],
        )
        return Task(
            id=session.id,
            context_id=record.context_id,
            status=status,
            artifacts=artifacts,
            history=[goal],
        )

    async def _failure(self, session_id: str, seq: int) -> str:
        for event in reversed(await self._keel.events.read(session_id, max(0, seq - 20))):
            if event.type == kinds.SESSION_FAILED:
                return str(event.payload.get("reason") or "the session failed")
        return "the session failed"


def _position(page_token: str) -> int:
    if not page_token:
        return 0
    if not page_token.isdigit():
        raise InvalidParamsError(message=f"'{page_token}' is not a page token of this server")
    return int(page_token)
