"""A session's run as an OpenTelemetry trace, derived from its event log.

Spans follow the GenAI semantic conventions of semantic-conventions v1.41
(`gen_ai.provider.name`, not the older `gen_ai.system`):

    invoke_workflow {workflow}     the run: gen_ai.workflow.name, gen_ai.conversation.id
      invoke_agent {agent}         an agent working a task (INTERNAL)
        chat {model}               one model call (CLIENT): usage, finish reasons
        execute_tool {tool}        one tool call (INTERNAL): gen_ai.tool.name, gen_ai.tool.call.id
        invoke_agent {agent}       a task it delegated, while it waits for the answer

An agent's turn on a task runs from the first node it enters to the last node that exits
before the task ends or is handed to another agent. Handoffs, delegations, guardrail
decisions, approvals, retries and budget overruns are span events. Every time comes from
the events, never from the clock, so a trace made while the session runs and one made from
its log afterwards are the same.

This module reads events and writes spans: it never touches the session, and it is imported
only when tracing is on (the OpenTelemetry SDK is the optional `keel[otel]` extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from keel.events import kinds
from keel.observability.semconv import (
    ERROR_TYPE,
    PROVIDER,
    REQUEST_MODEL,
    SCHEMA_URL,
    agent_attributes,
    chat_attributes,
    clip,
    event_attributes,
    model_parts,
    tool_attributes,
    workflow_attributes,
)
from keel.types import JsonObject, TraceEvent

TEAM_WORKFLOW = "team"
"""`gen_ai.workflow.name` of a team session; a declared workflow's spans carry its name."""

_NOT_AGENTS = frozenset({"keel", "local", "user"})
_SPAN_EVENTS = {
    kinds.HANDOFF: "keel.handoff",
    kinds.TASK_DELEGATED: "keel.delegation",
    kinds.GUARDRAIL_DECISION: "keel.guardrail",
    kinds.APPROVAL_REQUESTED: "keel.approval",
    kinds.APPROVAL_ANSWERED: "keel.approval",
    kinds.APPROVAL_APPLIED: "keel.approval",
    kinds.TOOL_INTERRUPTED: "keel.tool",
    kinds.MODEL_RETRY: "keel.model.retry",
    kinds.BUDGET_EXCEEDED: "keel.budget",
    kinds.PLAN_CREATED: "keel.plan",
    kinds.CANCEL_REQUESTED: "keel.cancel",
    kinds.WORKFLOW_STEP_STARTED: "keel.workflow.step",
    kinds.WORKFLOW_STEP_FINISHED: "keel.workflow.step",
    kinds.WORKFLOW_STEP_RETRY: "keel.workflow.step",
    kinds.WORKFLOW_BRANCH: "keel.workflow.branch",
    kinds.WORKFLOW_JOIN: "keel.workflow.join",
}
"""Events that become span events, and the prefix of their attributes."""
_ENDED = {
    kinds.SESSION_COMPLETED: "done",
    kinds.SESSION_FAILED: "failed",
    kinds.SESSION_CANCELLED: "cancelled",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass
class _Turn:
    """An agent's turn on a task: open from the first node it enters to the end of the last."""

    task_id: str
    agent: str | None
    start_ns: int
    last_ns: int
    running: int = 0
    closing: bool = False
    span: Span | None = None
    model_known: bool = False
    status: str | None = None
    failure: str | None = None
    pending: list[tuple[str, dict[str, AttributeValue], int]] = field(default_factory=list)


class SessionTracer:
    """Turns one session's events, in order, into spans. Feed it with `observe`; `finish`
    ends whatever is still open (a run that stopped without a final event)."""

    def __init__(
        self,
        provider: TracerProvider,
        session_id: str,
        *,
        workflow: str | None = None,
    ) -> None:
        self.session_id = session_id
        self._tracer = provider.get_tracer("keel", schema_url=SCHEMA_URL)
        self._workflow = workflow or TEAM_WORKFLOW
        ambient = trace.get_current_span().get_span_context()
        self._links = [Link(ambient)] if ambient.is_valid else []
        self._root: Span | None = None
        self._ended = False
        self._last_ns = 0
        self._goal: str | None = None
        self._versions: dict[str, int] = {}
        self._task_agents: dict[str, str] = {}
        self._task_goals: dict[str, str] = {}
        self._delegated_by: dict[str, str] = {}
        self._turns: dict[str, _Turn] = {}
        self._finished: set[str] = set()
        self._tools: dict[tuple[str, str], Span] = {}
        self._denied: set[tuple[str, str]] = set()

    # -- feeding -----------------------------------------------------------------------

    def observe(self, event: TraceEvent) -> None:
        if self._ended:
            return
        at = _ns(event.timestamp)
        if event.type == kinds.SESSION_CREATED:
            self._created(event.payload)
            return
        self._last_ns = max(self._last_ns, at)
        root = self._ensure_root(event, at)
        p = event.payload
        task_id = event.task_id
        match event.type:
            case kinds.SESSION_STARTED | kinds.SESSION_RESUMED:
                root.set_attribute("keel.run.id", event.run_id)
                if event.type == kinds.SESSION_RESUMED:
                    root.set_attribute("keel.session.resumed", True)
            case kinds.TASK_CREATED if task_id:
                if p.get("assignedAgent"):
                    self._task_agents[task_id] = str(p["assignedAgent"])
                self._task_goals[task_id] = str(p.get("goal", ""))
            case kinds.ROUTE_DECIDED if task_id and p.get("agent"):
                self._task_agents[task_id] = str(p["agent"])
            case kinds.TASK_DELEGATED if task_id:
                self._delegated_by[str(p.get("taskId"))] = task_id
                self._span_event(event, at)
            case kinds.HANDOFF if task_id:
                self._span_event(event, at)
                if p.get("to"):
                    self._task_agents[task_id] = str(p["to"])
            case kinds.NODE_ENTER if task_id:
                self._enter(task_id, at)
            case kinds.NODE_EXIT if task_id:
                self._exit(task_id, p, at)
            case kinds.TASK_STATUS if task_id:
                self._status(task_id, p, at)
            case kinds.MODEL_CALL if task_id:
                self._chat(event, at)
            case kinds.TOOL_CALL if task_id:
                self._tool_call(event, at)
            case kinds.TOOL_RESULT if task_id:
                self._tool_result(event, at)
            case kinds.GUARDRAIL_DECISION if task_id:
                if p.get("verdict") == "deny":
                    self._denied.add((task_id, str(p.get("callId"))))
                self._span_event(event, at)
            case kinds.SESSION_COMPLETED | kinds.SESSION_FAILED | kinds.SESSION_CANCELLED:
                self._end_session(_ENDED[event.type], p, at)
            case _ if event.type in _SPAN_EVENTS:
                self._span_event(event, at)

    def finish(self, session_id: str) -> None:
        """The run is over: end what is open at the last event seen (the run stopped before
        the session ended: it was interrupted, and resumes in a new trace)."""
        if self._ended or self._root is None:
            return
        self._root.set_attribute("keel.run.interrupted", True)
        self._end_session(None, {}, self._last_ns)

    # -- the session -------------------------------------------------------------------

    def _created(self, payload: JsonObject) -> None:
        self._goal = str(payload.get("goal", "")) or None
        versions = payload.get("agentVersions")
        if isinstance(versions, dict):
            self._versions = {str(name): int(v) for name, v in versions.items()}

    def _ensure_root(self, event: TraceEvent, at: int) -> Span:
        if self._root is None:
            self._root = self._tracer.start_span(
                f"invoke_workflow {self._workflow}",
                context=Context(),  # a session is a trace of its own
                kind=SpanKind.INTERNAL,
                attributes=workflow_attributes(
                    self._workflow, self.session_id, event.run_id, self._goal
                ),
                links=self._links,
                start_time=at,
            )
        return self._root

    def _end_session(self, status: str | None, payload: JsonObject, at: int) -> None:
        for (task_id, call_id), span in list(self._tools.items()):
            self._end_tool(task_id, call_id, span, at, outcome=None)
        for turn in list(self._turns.values()):
            self._end_turn(turn, at if turn.running else turn.last_ns)
        root = self._root
        if root is None:
            return
        if status is not None:
            root.set_attribute("keel.session.status", status)
        if status == "failed":
            root.set_attribute(ERROR_TYPE, "session_failed")
            root.set_status(Status(StatusCode.ERROR, clip(str(payload.get("reason", "")))))
        root.end(end_time=at)
        self._ended = True

    # -- agent turns -------------------------------------------------------------------

    def _enter(self, task_id: str, at: int) -> None:
        if task_id in self._finished:  # bookkeeping after the agent is done (a merge ...)
            return
        turn = self._turns.get(task_id)
        agent = self._task_agents.get(task_id)
        if turn is not None and turn.agent and agent and turn.agent != agent:  # handed off
            self._end_turn(turn, turn.last_ns)
            turn = None
        if turn is None:
            turn = _Turn(task_id, agent, start_ns=at, last_ns=at)
            self._turns[task_id] = turn
        turn.running += 1
        turn.last_ns = at

    def _exit(self, task_id: str, payload: JsonObject, at: int) -> None:
        result = payload.get("result")
        outcome = result if isinstance(result, dict) else {}
        if payload.get("cancelled"):
            outcome = {"cancelled": True}
        for (task, call_id), span in list(self._tools.items()):
            if task == task_id:
                self._end_tool(task, call_id, span, at, outcome=outcome)
        turn = self._turns.get(task_id)
        if turn is None:
            return
        turn.running = max(0, turn.running - 1)
        turn.last_ns = max(turn.last_ns, at)
        if turn.closing and turn.running == 0:
            self._end_turn(turn, at)

    def _status(self, task_id: str, payload: JsonObject, at: int) -> None:
        to = str(payload.get("to"))
        if to not in ("done", "failed", "cancelled"):
            return
        self._finished.add(task_id)
        turn = self._turns.get(task_id)
        if turn is None:
            return
        turn.status = to
        if to == "failed":
            turn.failure = str(payload.get("reason", "")) or "the task failed"
        turn.closing = True
        if turn.running == 0:
            self._end_turn(turn, turn.last_ns)

    def _turn_span(self, turn: _Turn, hint: str | None = None) -> Span | None:
        """The turn's span, started (at the turn's start) once its agent is known."""
        if turn.span is not None:
            return turn.span
        turn.agent = turn.agent or self._task_agents.get(turn.task_id) or hint
        if turn.agent is None:
            return None
        turn.span = self._tracer.start_span(
            f"invoke_agent {turn.agent}",
            context=trace.set_span_in_context(self._parent_of(turn.task_id)),
            kind=SpanKind.INTERNAL,
            attributes=agent_attributes(
                turn.agent,
                self._versions.get(turn.agent),
                self.session_id,
                turn.task_id,
                self._task_goals.get(turn.task_id),
            ),
            start_time=turn.start_ns,
        )
        for name, attributes_, at in turn.pending:
            turn.span.add_event(name, attributes_, timestamp=at)
        turn.pending.clear()
        return turn.span

    def _parent_of(self, task_id: str) -> Span:
        """A delegated task's turn runs inside the delegating agent's turn, which waits for
        it; every other turn sits under the session."""
        parent = self._turns.get(self._delegated_by.get(task_id, ""))
        span = self._turn_span(parent) if parent is not None else None
        assert self._root is not None
        return span or self._root

    def _end_turn(self, turn: _Turn, at: int) -> None:
        self._turns.pop(turn.task_id, None)
        span = self._turn_span(turn)
        if span is None:  # no agent worked the task in this trace
            assert self._root is not None
            for name, attributes, moment in turn.pending:
                self._root.add_event(name, attributes, timestamp=moment)
            return
        if turn.status:
            span.set_attribute("keel.task.status", turn.status)
        if turn.failure is not None:
            span.set_attribute(ERROR_TYPE, "task_failed")
            span.set_status(Status(StatusCode.ERROR, clip(turn.failure)))
        span.end(end_time=max(at, turn.start_ns))

    def _holder(self, task_id: str, since: int, until: int, agent: str | None) -> Span:
        """The span a call from `since` to `until` goes under: its agent's turn (one is
        opened for calls of a turn that began before this trace did)."""
        assert self._root is not None
        turn = self._turns.get(task_id)
        if turn is None:
            turn = _Turn(task_id, None, start_ns=since, last_ns=until)
            self._turns[task_id] = turn
        turn.last_ns = max(turn.last_ns, until)
        return self._turn_span(turn, agent) or self._root

    # -- model and tool calls ----------------------------------------------------------

    def _chat(self, event: TraceEvent, at: int) -> None:
        p = event.payload
        agent = str(p.get("agent") or event.actor)
        provider, model = model_parts(str(p.get("model", "")))
        duration_ns = int(float(p.get("durationMs") or 0) * 1_000_000)
        task_id = str(event.task_id)
        turn = self._turns.get(task_id)
        start = max(at - duration_ns, turn.start_ns if turn else 0)
        holder = self._holder(task_id, start, at, agent)
        turn = self._turns[task_id]
        if holder is turn.span and not turn.model_known:
            turn.model_known = True
            holder.set_attribute(PROVIDER, provider)
            holder.set_attribute(REQUEST_MODEL, model)
        span = self._tracer.start_span(
            f"chat {model}",
            context=trace.set_span_in_context(holder),
            kind=SpanKind.CLIENT,
            attributes=chat_attributes(p, agent, self.session_id, task_id),
            start_time=start,
        )
        span.end(end_time=at)

    def _start_tool(self, event: TraceEvent, at: int) -> Span:
        p = event.payload
        task_id, call_id, tool = str(event.task_id), str(p.get("callId")), str(p.get("tool"))
        agent = event.actor if event.actor not in _NOT_AGENTS else None
        holder = self._holder(task_id, at, at, agent)
        span = self._tracer.start_span(
            f"execute_tool {tool}",
            context=trace.set_span_in_context(holder),
            kind=SpanKind.INTERNAL,
            attributes=tool_attributes(tool, call_id, task_id),
            start_time=at,
        )
        self._tools[(task_id, call_id)] = span
        return span

    def _tool_call(self, event: TraceEvent, at: int) -> None:
        key = (str(event.task_id), str(event.payload.get("callId")))
        earlier = self._tools.pop(key, None)
        if earlier is not None:  # asked about before it ran: this is the run after the answer
            earlier.end(end_time=at)
        self._start_tool(event, at)

    def _tool_result(self, event: TraceEvent, at: int) -> None:
        p = event.payload
        key = (str(event.task_id), str(p.get("callId")))
        span = self._tools.get(key)
        if span is None:  # started before this trace did
            duration_ns = int(float(p.get("durationMs") or 0) * 1_000_000)
            span = self._start_tool(event, at - duration_ns)
        self._end_tool(key[0], key[1], span, at, outcome={"ok": bool(p.get("ok"))})

    def _end_tool(
        self, task_id: str, call_id: str, span: Span, at: int, *, outcome: JsonObject | None
    ) -> None:
        """End a tool span; `outcome` is the result (`ok`), or a node's result that says
        what became of a call with no result of its own (asked about, delegated ...)."""
        self._tools.pop((task_id, call_id), None)
        if outcome is not None:
            approval = outcome.get("approval")
            if isinstance(approval, dict) and approval.get("callId") == call_id:
                span.set_attribute("keel.tool.outcome", "awaiting_approval")
            elif outcome.get("cancelled"):
                span.set_attribute(ERROR_TYPE, "cancelled")
                span.set_status(Status(StatusCode.ERROR, "cancelled"))
            elif outcome.get("ok") is False:
                denied = (task_id, call_id) in self._denied
                span.set_attribute(ERROR_TYPE, "guardrail_denied" if denied else "tool_error")
                span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=at)

    # -- span events -------------------------------------------------------------------

    def _span_event(self, event: TraceEvent, at: int) -> None:
        """Handoffs, delegations, approvals ... on the span they concern: a guardrail
        decision on its tool call's span, the rest on the agent's turn (kept until the turn's
        agent is known), else on the session."""
        assert self._root is not None
        name = f"keel.{event.type}"
        attributes = event_attributes(event.payload, _SPAN_EVENTS.get(event.type, "keel"))
        task_id = event.task_id
        if task_id:
            attributes["keel.task.id"] = task_id
        if event.actor not in _NOT_AGENTS and event.actor != event.payload.get("agent"):
            attributes["keel.actor"] = event.actor
        if task_id is None or task_id in self._finished:
            self._root.add_event(name, attributes, timestamp=at)
            return
        call = self._tools.get((task_id, str(event.payload.get("callId"))))
        if event.type == kinds.GUARDRAIL_DECISION and call is not None:
            call.add_event(name, attributes, timestamp=at)
            return
        turn = self._turns.get(task_id)
        if turn is None:
            turn = self._turns[task_id] = _Turn(task_id, None, start_ns=at, last_ns=at)
        span = self._turn_span(turn)
        if span is None:
            turn.pending.append((name, attributes, at))
        else:
            span.add_event(name, attributes, timestamp=at)
