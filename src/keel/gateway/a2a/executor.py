"""The SDK's agent executor. It never runs agents: Keel's workers do. For each request it
follows the task's session and reports its events as A2A updates, until the session ends or
waits for a person's approval.

- A new task (its session just created): the task, submitted, then the session's progress.
- A reply to a task waiting for an approval: 'allow' or 'deny' answers the oldest pending
  approval; anything else is asked again.
- Another message to a task that has not ended (delivered to the session when it came, see
  `sessions`): the session's progress from now on.

Cancelling asks Keel to cancel the session and waits for it to end, so the update that
reports the end comes from the session, like every other.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import Task, TaskState, TaskStatus

from keel.errors import IllegalTransition
from keel.gateway.a2a.callers import caller_of
from keel.gateway.a2a.progress import (
    TaskRef,
    approval_message,
    cancel_session,
    final_updates,
    follow,
    pending_approval,
    status_update,
)
from keel.orchestrator import Keel
from keel.types import utc_now

CANCEL_WAIT_S = 10.0
"""How long a cancel waits for the session to end (a worker stops it within a second)."""

_ALLOW = frozenset({"allow", "allowed", "approve", "approved", "yes", "y", "ok", "go"})
_DENY = frozenset({"deny", "denied", "reject", "rejected", "no", "n", "stop"})


def decision(reply: str) -> bool | None:
    """True for a reply that allows, False for one that denies, None when it does neither."""
    words = re.findall(r"[a-z]+", reply.lower())
    if not words:
        return None
    if words[0] in _ALLOW:
        return True
    if words[0] in _DENY:
        return False
    return None


class KeelAgentExecutor(AgentExecutor):
    def __init__(self, keel: Keel, *, cancel_wait_s: float = CANCEL_WAIT_S) -> None:
        self._keel = keel
        self._cancel_wait_s = cancel_wait_s
        self._following: dict[str, asyncio.Event] = {}
        """Tasks an `execute` follows now; each event is set when it returns."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        ref = _ref(context)
        returned = self._following[ref.task_id] = asyncio.Event()
        try:
            await self._execute(ref, context, event_queue)
        finally:
            returned.set()
            if self._following.get(ref.task_id) is returned:
                del self._following[ref.task_id]

    async def _execute(self, ref: TaskRef, context: RequestContext, queue: EventQueue) -> None:
        keel = self._keel
        after = await keel.events.last_seq(ref.task_id)
        task = context.current_task
        if task is None:  # new: the store queues the session when it records this task
            await queue.enqueue_event(_submitted(ref, context))
            state = TaskState.TASK_STATE_SUBMITTED
        else:
            session = await keel.sessions.get(ref.task_id)
            if session.status.is_final:  # it ended since the SDK read the task
                for update in final_updates(ref, session):
                    await queue.enqueue_event(update)
                return
            state = task.status.state
            if state == TaskState.TASK_STATE_INPUT_REQUIRED:
                reply = context.get_user_input().strip()
                if not await self._answer(ref, context, reply, queue):
                    return
        async for _, update in follow(keel, ref, after, state=state):
            await queue.enqueue_event(update)

    async def _answer(
        self, ref: TaskRef, context: RequestContext, reply: str, queue: EventQueue
    ) -> bool:
        """Answer the approval the task waits for with `reply`; False when the reply did not
        say allow or deny and the question was asked again."""
        approval = await pending_approval(self._keel, ref.task_id)
        if approval is None:  # answered elsewhere meanwhile
            return True
        allow = decision(reply)
        if allow is None:
            again = approval_message(ref, approval)
            again.parts[0].text = f"Please answer 'allow' or 'deny'. {again.parts[0].text}"
            state = TaskState.TASK_STATE_INPUT_REQUIRED
            await queue.enqueue_event(status_update(ref, state, utc_now(), again))
            return False
        caller = caller_of(context.call_context)
        actor = caller.user_id if caller else "a2a"
        with contextlib.suppress(IllegalTransition):  # answered elsewhere meanwhile
            await self._keel.answer(approval.id, allow=allow, note=reply[:500], actor=actor)
        return True

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        ref = _ref(context)
        caller = caller_of(context.call_context)
        following = self._following.get(ref.task_id)
        session = await cancel_session(
            self._keel,
            ref.task_id,
            actor=caller.user_id if caller else "a2a",
            wait_s=self._cancel_wait_s,
        )
        if following is not None:  # its execute reports the end; let it before it is stopped
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(following.wait(), self._cancel_wait_s)
        elif session.status.is_final:
            for update in final_updates(ref, session):
                await event_queue.enqueue_event(update)


def _ref(context: RequestContext) -> TaskRef:
    if context.task_id is None or context.context_id is None:
        raise ValueError("an A2A request reached the executor without a task and context id")
    return TaskRef(context.task_id, context.context_id)


def _submitted(ref: TaskRef, context: RequestContext) -> Task:
    status = TaskStatus(state=TaskState.TASK_STATE_SUBMITTED, timestamp=utc_now())
    history = [context.message] if context.message is not None else []
    return Task(id=ref.task_id, context_id=ref.context_id, status=status, history=history)
