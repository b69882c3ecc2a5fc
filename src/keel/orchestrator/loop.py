"""The run loop: load the checkpoint, start the nodes that are ready, and as each finishes,
reduce its result into the state and checkpoint, until nothing is ready or running.

A `Flow` decides what runs; the loop makes it durable. A finished node's effects (task
changes, events), its `workflow.node.exit` (which carries its result) and the
`workflow.node.enter` of the nodes it made ready commit in one transaction, so a step costs
one commit (see `checkpoint.py` for how that log is the checkpoint).

Independent nodes run concurrently, up to the flow's `max_concurrency`. A process that dies
resumes from the last checkpoint: finished nodes are not run again, and nodes that were
running run again (or, for side effects, are reported by the flow) without a second enter.

Cancellation: a request (from this process or another) is noticed within
`CANCEL_POLL_S`; the loop stops the affected nodes at once (their model calls and
commands are cancelled, process trees killed), lets the flow record the cancellation, and
checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from keel.errors import SessionNotResumable
from keel.events import EventLog, NewEvent, kinds, now_us
from keel.guardrails import approvals
from keel.orchestrator import cancel
from keel.orchestrator.checkpoint import (
    SNAPSHOT_EVERY,
    Checkpoint,
    read_in,
    replay,
    snapshot_in,
)
from keel.orchestrator.flow import Flow
from keel.orchestrator.unit import Node, Publish, Unit
from keel.registry.sessions import SessionRegistry
from keel.store import Engine, Tx
from keel.types import JsonObject, SessionStatus

S = TypeVar("S", bound=BaseModel)

CANCEL_POLL_S = 0.2
"""How often a running session looks for cancellation requests from other processes."""

NodeOutput = tuple[Unit, JsonObject]

Fence = Callable[[Tx], None]
"""Run first in every transaction a session's run commits; it raises to refuse the commit
(a worker that lost its lease must not write another step)."""


_NEEDS_ATTENTION = (
    "SELECT session_id FROM cancel_requests WHERE handled_at IS NULL UNION "
    "SELECT session_id FROM approvals WHERE (status <> 'pending' AND applied_at IS NULL) "
    "OR (status = 'pending' AND deadline <= ?)"
)
"""Sessions with something from outside to take in: a cancellation, an answer, a deadline."""


class _Watch:
    """Cancellation requests for the sessions this process runs: one poll for all of them,
    plus an immediate nudge for requests made in this process, or signalled on
    `ATTENTION_CHANNEL` by another process (where the engine has signals)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions: dict[str, Callable[[], None]] = {}
        self._nudge = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def add(self, session_id: str, notice: Callable[[], None]) -> None:
        self._sessions[session_id] = notice
        if self._unsubscribe is None:
            self._unsubscribe = self._engine.subscribe(approvals.ATTENTION_CHANNEL, self._signalled)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())

    def remove(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        if not self._sessions:
            if self._task is not None:
                self._task.cancel()
                self._task = None
            if self._unsubscribe is not None:
                unsubscribe, self._unsubscribe = self._unsubscribe, None
                unsubscribe()

    def nudge(self) -> None:
        self._nudge.set()

    def _signalled(self, session_id: str | None) -> None:
        if session_id is None or session_id in self._sessions:
            self.nudge()

    async def _poll(self) -> None:
        while self._sessions:
            with contextlib.suppress(TimeoutError):  # not wait_for: see Worker.run
                async with asyncio.timeout(CANCEL_POLL_S):
                    await self._nudge.wait()
            self._nudge.clear()
            rows = await self._engine.read(lambda tx: tx.fetchall(_NEEDS_ATTENTION, (now_us(),)))
            for (session_id,) in rows:
                notice = self._sessions.get(session_id)
                if notice is not None:
                    notice()


class RunLoop:
    def __init__(self, engine: Engine, events: EventLog, run_id: str) -> None:
        self._engine = engine
        self._events = events
        self.run_id = run_id
        self._watch = _Watch(engine)
        self._fences: dict[str, Fence] = {}
        self._before_end: dict[str, Callable[[], Awaitable[None]]] = {}

    def nudge(self) -> None:
        """A cancellation was requested in this process: look now, not at the next poll."""
        self._watch.nudge()

    async def load_checkpoint(self, session_id: str, flow: Flow[S]) -> Checkpoint[S] | None:
        stored = await self._engine.read(lambda tx: read_in(tx, session_id))
        return replay(session_id, stored, flow) if stored is not None else None

    def _write(self, session_id: str, work: Callable[[Tx], object]) -> Callable[[Tx], None]:
        fence = self._fences.get(session_id)

        def fenced(tx: Tx) -> None:
            if fence is not None:
                fence(tx)
            work(tx)

        return fenced

    def _publisher(self, session_id: str) -> Publish:
        async def publish(events: list[NewEvent]) -> None:
            await self._engine.write(
                self._write(
                    session_id, lambda tx: EventLog.append_in(tx, session_id, self.run_id, events)
                )
            )
            self._events.notify(session_id)

        return publish

    async def _commit(
        self,
        units: Unit | list[Unit],
        step: int,
        running: dict[str, Node],
        state: BaseModel,
        *,
        snapshot: bool,
    ) -> None:
        """Write the steps' units in one transaction; with `snapshot`, the state after them."""
        steps = units if isinstance(units, list) else [units]
        session_id = steps[0].session_id
        before_end = self._before_end.get(session_id)
        if before_end is not None and any(unit.ends for unit in steps):
            await before_end()  # e.g. keep the workspace's change before the final event

        def work(tx: Tx) -> None:
            seq = 0
            for unit in steps:
                seq = unit.apply(tx)
            if snapshot:
                snapshot_in(tx, session_id, step, seq, running, state)

        await self._engine.write(self._write(session_id, work))
        self._events.notify(session_id)

    def _admit(self, flow: Flow[S], state: S, running: dict[str, Node], unit: Unit) -> None:
        """Enter the nodes that are ready, as far as the concurrency limit allows; with
        nothing ready and nothing running, buffer the session's end."""
        free = max(1, flow.max_concurrency) - len(running)
        if free > 0:
            for node in flow.ready(state, running.keys())[:free]:
                unit.emit(kinds.NODE_ENTER, node.to_json(), task_id=node.task_id)
                flow.enter(node, state, unit)
                running[node.id] = node
        if running or flow.waiting(state):
            return
        end = flow.outcome(state, unit)
        unit.ends = True
        run_id, session_id = unit.run_id, unit.session_id
        unit.do(
            lambda tx: SessionRegistry.transition_in(
                tx,
                run_id,
                session_id,
                end.status,
                final_answer=end.final_answer,
                payload=end.payload,
            )
        )

    async def _start(self, session_id: str, flow: Flow[S]) -> tuple[Checkpoint[S], bool]:
        """The checkpoint to go on from, and whether it is a resume (nodes were running)."""
        checkpoint = await self.load_checkpoint(session_id, flow)
        unit = Unit(session_id, self.run_id)
        if checkpoint is None:
            unit.do(
                lambda tx: SessionRegistry.transition_in(
                    tx, self.run_id, session_id, SessionStatus.RUNNING
                )
            )
            unit.emit(kinds.SESSION_STARTED, {"runId": self.run_id})
            checkpoint = Checkpoint(step=0, state=flow.start(unit))
            self._admit(flow, checkpoint.state, checkpoint.running, unit)
            await self._commit(unit, 0, checkpoint.running, checkpoint.state, snapshot=True)
            return checkpoint, False
        if not checkpoint.running and not flow.waiting(checkpoint.state):
            raise SessionNotResumable(f"session {session_id} has already ended")
        nodes = list(checkpoint.running)
        payload: JsonObject = {"runId": self.run_id, "step": checkpoint.step, "nodes": nodes}
        unit.emit(kinds.SESSION_RESUMED, payload)
        await self._commit(unit, checkpoint.step, {}, checkpoint.state, snapshot=False)
        return checkpoint, True

    async def run(
        self,
        session_id: str,
        flow: Flow[S],
        *,
        fence: Fence | None = None,
        before_end: Callable[[], Awaitable[None]] | None = None,
    ) -> S:
        """Run `session_id` with `flow` to its end, starting or resuming as needed. With a
        `fence`, every commit of the run first passes it; `before_end` is awaited before
        the commit that ends the session (done, failed or cancelled)."""
        if fence is not None:
            self._fences[session_id] = fence
        if before_end is not None:
            self._before_end[session_id] = before_end
        try:
            return await self._run(session_id, flow)
        finally:
            self._fences.pop(session_id, None)
            self._before_end.pop(session_id, None)

    async def _run(self, session_id: str, flow: Flow[S]) -> S:
        checkpoint, resuming = await self._start(session_id, flow)
        state, step, running = checkpoint.state, checkpoint.step, checkpoint.running
        resumed = set(running) if resuming else set()  # nodes a dead process left running
        publish = self._publisher(session_id)
        tasks: dict[asyncio.Task[NodeOutput], Node] = {}
        launched: set[str] = set()
        finished: list[asyncio.Task[NodeOutput]] = []
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        attention = True  # take in whatever arrived while nothing ran the session

        def rouse() -> None:
            if not wake.done():
                wake.set_result(None)

        def on_done(task: asyncio.Task[NodeOutput]) -> None:
            finished.append(task)
            rouse()

        def notice() -> None:
            nonlocal attention
            attention = True
            rouse()

        async def execute(node: Node, at: S, again: bool) -> NodeOutput:
            unit = Unit(session_id, self.run_id, publish)
            result = flow.on_resume(node, at, unit) if again else None
            if result is None:
                result = await flow.run(node, at, unit)
            return unit, result

        self._watch.add(session_id, notice)
        try:
            while running or flow.waiting(state):
                if attention:
                    attention = False
                    state, step = await self._cancel(session_id, flow, state, step, running, tasks)
                    state, step = await self._answers(session_id, flow, state, step, running)
                    launched &= set(running)
                    continue
                for node in running.values():
                    if node.id not in launched:
                        again = node.id in resumed
                        resumed.discard(node.id)
                        task = loop.create_task(execute(node, state, again))
                        task.add_done_callback(on_done)
                        tasks[task] = node
                        launched.add(node.id)
                if not finished:
                    await wake  # a node finished, or something arrived from outside
                wake = loop.create_future()
                done, finished[:] = list(finished), []
                units: list[Unit] = []
                snapshot = False
                for task in done:
                    node_or_none = tasks.pop(task, None)
                    if node_or_none is None:
                        continue  # stopped by a cancellation, already recorded
                    node = node_or_none
                    launched.discard(node.id)
                    unit, result = task.result()
                    state = flow.reduce(state, node, result)
                    exit_payload: JsonObject = {"node": node.id}
                    if result:
                        exit_payload["result"] = result
                    unit.emit(kinds.NODE_EXIT, exit_payload, task_id=node.task_id)
                    del running[node.id]
                    step += 1
                    snapshot = snapshot or step % SNAPSHOT_EVERY == 0
                    self._admit(flow, state, running, unit)
                    units.append(unit)
                if units:  # nodes that finished together commit together
                    await self._commit(units, step, running, state, snapshot=snapshot)
        finally:
            self._watch.remove(session_id)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return state

    async def _answers(
        self, session_id: str, flow: Flow[S], state: S, step: int, running: dict[str, Node]
    ) -> tuple[S, int]:
        """Take in answers to approvals (and deadlines that passed), then checkpoint."""
        if not flow.waiting(state):
            return state, step
        await self._engine.write(
            self._write(session_id, lambda tx: approvals.expire_in(tx, self.run_id, session_id))
        )
        answers = await self._engine.read(lambda tx: approvals.unapplied_in(tx, session_id))
        if not answers:
            return state, step
        unit = Unit(session_id, self.run_id)
        for answer in answers:
            state = flow.on_answer(state, answer, unit)
        ids = [answer.id for answer in answers]
        unit.do(lambda tx: approvals.applied_in(tx, ids))
        self._admit(flow, state, running, unit)
        step += 1
        await self._commit(unit, step, running, state, snapshot=True)
        return state, step

    async def _cancel(
        self,
        session_id: str,
        flow: Flow[S],
        state: S,
        step: int,
        running: dict[str, Node],
        tasks: dict[asyncio.Task[NodeOutput], Node],
    ) -> tuple[S, int]:
        """Stop what the pending requests ask to stop, record it, checkpoint."""
        requests = await self._engine.read(lambda tx: cancel.pending_in(tx, session_id))
        if not requests:
            return state, step
        whole = any(request.task_id is None for request in requests)
        scope = None if whole else [r.task_id for r in requests if r.task_id is not None]
        unit = Unit(session_id, self.run_id)
        state, affected = flow.cancel(state, scope, unit)
        stopping = {
            task: node
            for task, node in tasks.items()
            if whole or (node.task_id is not None and node.task_id in affected)
        }
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)
        for task, node in stopping.items():
            del tasks[task]
            del running[node.id]
            unit.emit(kinds.NODE_EXIT, {"node": node.id, "cancelled": True}, task_id=node.task_id)
        if whole:
            reason = "; ".join(dict.fromkeys(r.reason for r in requests)) or "cancelled"
            running.clear()
            unit.ends = True
            unit.do(
                lambda tx: SessionRegistry.transition_in(
                    tx,
                    self.run_id,
                    session_id,
                    SessionStatus.CANCELLED,
                    payload={"reason": reason},
                )
            )
        elif running or not flow.waiting(state):
            self._admit(flow, state, running, unit)
        unit.do(lambda tx: cancel.handled_in(tx, requests))
        step += 1
        await self._commit(unit, step, running, state, snapshot=True)
        return state, step
