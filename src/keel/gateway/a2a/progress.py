"""A session's progress in A2A terms: its status as a task state, and its events as the
status and artifact updates an A2A client receives.

    Keel session                         A2A task
    pending                              submitted
    running                              working
    running, an approval is pending      input-required (the approval in the status message)
    done                                 completed (the final answer as artifact and message)
    failed                               failed (the reason in the status message)
    cancelled                            canceled

Both the executor (which follows a session for a request) and the event stream (which
serves subscribers another process follows for) read the log through `follow`, so every
client sees the same updates for the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from a2a.server.events import Event
from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from keel.errors import IllegalTransition, SessionNotResumable
from keel.events import kinds
from keel.guardrails.approvals import Approval
from keel.orchestrator import Keel
from keel.types import Session, SessionStatus, TraceEvent

ANSWER = "answer"
"""The name of the artifact that holds a session's final answer."""

ENDS = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_INPUT_REQUIRED,
    }
)
"""The states after which a request's updates stop: the task ended, or waits for a person."""

_STATES = {
    SessionStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    SessionStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    SessionStatus.DONE: TaskState.TASK_STATE_COMPLETED,
    SessionStatus.FAILED: TaskState.TASK_STATE_FAILED,
    SessionStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
}
_RUNNING = frozenset({kinds.SESSION_STARTED, kinds.SESSION_RESUMED})
_APPROVALS = frozenset({kinds.APPROVAL_REQUESTED, kinds.APPROVAL_ANSWERED})


@dataclass(frozen=True, slots=True)
class TaskRef:
    """An A2A task: the id of its session, and the A2A context it belongs to."""

    task_id: str
    context_id: str


def task_state(status: SessionStatus, *, waiting: bool) -> TaskState:
    """The A2A state of a session with `status`; `waiting`: an approval is pending."""
    if status is SessionStatus.RUNNING and waiting:
        return TaskState.TASK_STATE_INPUT_REQUIRED
    return _STATES[status]


def agent_message(
    ref: TaskRef, message_id: str, text: str, metadata: dict[str, object] | None = None
) -> Message:
    return Message(
        message_id=message_id,
        context_id=ref.context_id,
        task_id=ref.task_id,
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
        metadata=metadata,
    )


def answer_artifact(ref: TaskRef, text: str) -> Artifact:
    return Artifact(
        artifact_id=f"{ref.task_id}-{ANSWER}",
        name=ANSWER,
        description="The session's final answer.",
        parts=[Part(text=text)],
    )


def approval_message(ref: TaskRef, approval: Approval) -> Message:
    """What a task waiting for `approval` says: what would run, why it asks, how to answer."""
    arguments = json.dumps(approval.arguments, ensure_ascii=False)
    reasons = "; ".join(approval.reasons) or "the policy asks"
    text = (
        f"Agent {approval.agent} wants to run {approval.tool} {arguments} (risk {approval.risk}: "
        f"{reasons}). Reply 'allow' or 'deny'."
    )
    keel = {"approvalId": approval.id, "tool": approval.tool, "risk": approval.risk}
    return agent_message(ref, f"{ref.task_id}-{approval.id}", text, {"keel": keel})


def status_update(
    ref: TaskRef, state: TaskState, at: datetime, message: Message | None = None
) -> TaskStatusUpdateEvent:
    status = TaskStatus(state=state, timestamp=at)
    if message is not None:
        status.message.CopyFrom(message)
    return TaskStatusUpdateEvent(task_id=ref.task_id, context_id=ref.context_id, status=status)


async def pending_approval(keel: Keel, session_id: str) -> Approval | None:
    """The oldest approval the session waits for, if any."""
    pending = await keel.approvals.list(session_id)
    return pending[0] if pending else None


def final_updates(ref: TaskRef, session: Session, reason: str | None = None) -> list[Event]:
    """The updates that end a task whose session has ended."""
    at = session.updated_at
    if session.status is SessionStatus.DONE:
        answer = session.final_answer or ""
        message = agent_message(ref, f"{ref.task_id}-{ANSWER}", answer)
        updates: list[Event] = []
        if answer:
            artifact = answer_artifact(ref, answer)
            updates.append(
                TaskArtifactUpdateEvent(
                    task_id=ref.task_id,
                    context_id=ref.context_id,
                    artifact=artifact,
                    last_chunk=True,
                )
            )
        updates.append(status_update(ref, TaskState.TASK_STATE_COMPLETED, at, message))
        return updates
    text = reason or f"the session {session.status.value}"
    message = agent_message(ref, f"{ref.task_id}-end", text)
    return [status_update(ref, _STATES[session.status], at, message)]


async def follow(
    keel: Keel, ref: TaskRef, after: int, *, state: TaskState
) -> AsyncIterator[tuple[int, Event]]:
    """The task's updates from the session's events after `after`, each with the sequence
    number of its event. A task in `state` gets no update that repeats it; the updates end
    once the task has ended or waits for an approval."""
    async for event in keel.events.follow(ref.task_id, after, until=kinds.SESSION_FINAL):
        for update in await _updates(keel, ref, event, state):
            if isinstance(update, TaskStatusUpdateEvent):
                state = update.status.state
            yield event.seq, update
        if state in ENDS:
            return


async def _updates(keel: Keel, ref: TaskRef, event: TraceEvent, state: TaskState) -> list[Event]:
    if event.type in kinds.SESSION_FINAL:
        reason = event.payload.get("reason")
        session = await keel.sessions.get(ref.task_id)
        return final_updates(ref, session, reason if isinstance(reason, str) else None)
    if event.type in _APPROVALS:
        approval = await pending_approval(keel, ref.task_id)
        if approval is not None:
            message = approval_message(ref, approval)
            return [
                status_update(ref, TaskState.TASK_STATE_INPUT_REQUIRED, event.timestamp, message)
            ]
    if event.type in _RUNNING | _APPROVALS and state != TaskState.TASK_STATE_WORKING:
        return [status_update(ref, TaskState.TASK_STATE_WORKING, event.timestamp)]
    return []


async def cancel_session(keel: Keel, session_id: str, *, actor: str, wait_s: float) -> Session:
    """Ask to cancel the session and queue it, so that a worker takes the request in (one
    that runs it stops within a second); return it once it has ended, or after `wait_s`."""
    after = await keel.events.last_seq(session_id)
    session = await keel.sessions.get(session_id)
    if session.status.is_final:
        return session
    with contextlib.suppress(IllegalTransition):  # it ended meanwhile
        await keel.cancel(session_id, reason=f"cancelled by A2A client {actor}", actor=actor)
    with contextlib.suppress(SessionNotResumable):
        await keel.submit(session_id)
    if wait_s > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                async for _ in keel.events.follow(session_id, after, until=kinds.SESSION_FINAL):
                    pass
    return await keel.sessions.get(session_id)
