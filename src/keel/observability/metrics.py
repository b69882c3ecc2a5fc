"""Prometheus metrics, fed by the event log and counted from the store at scrape time.

Counters and histograms grow as `observe` is given the events of the sessions this process
runs once a runtime has them (`keel.metrics = KeelMetrics()`; see `follow.observe_session`):
model calls and tokens, tool calls, guardrail decisions, approvals, handoffs and delegations,
and how long steps, model calls, tool calls and approval waits took. Counting is off by
default because it reads every event back: about a fifth of the throughput of a process
running hundreds of sessions on instant scripted models, nothing next to real model calls.

Sessions and tasks by status are counted from the store by `refresh`, which the `/metrics`
endpoint awaits before `render`, since a scrape is synchronous and the store is not.

Every metric lives in the instance's own registry, never the global one, so two runtimes in
one process (or a test) do not share counts. Names are `keel_*` with their unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from keel.events import kinds
from keel.store import Engine, Tx
from keel.types import SessionStatus, TaskStatus, TraceEvent

STEP_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
APPROVAL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)


class _StoreCounts(Collector):
    """Sessions and tasks by status, as the store counted them at the last refresh."""

    def __init__(self) -> None:
        self.sessions: dict[str, int] | None = None
        self.tasks: dict[str, int] = {}

    def collect(self) -> Iterable[Metric]:
        if self.sessions is None:
            return
        sessions = GaugeMetricFamily("keel_sessions", "Sessions by status.", labels=["status"])
        for session_status in SessionStatus:
            sessions.add_metric([session_status.value], self.sessions.get(session_status, 0))
        yield sessions
        tasks = GaugeMetricFamily("keel_tasks", "Tasks by status.", labels=["status"])
        for task_status in TaskStatus:
            tasks.add_metric([task_status.value], self.tasks.get(task_status, 0))
        yield tasks


def _count_in(tx: Tx) -> tuple[dict[str, int], dict[str, int]]:
    sessions = tx.fetchall("SELECT status, COUNT(*) FROM sessions GROUP BY status")
    tasks = tx.fetchall("SELECT status, COUNT(*) FROM tasks GROUP BY status")
    return (
        {str(status): int(n) for status, n in sessions},
        {str(status): int(n) for status, n in tasks},
    )


@dataclass
class _Open:
    """What one session has started and not finished: the pairs latencies are made of."""

    nodes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    approvals: dict[str, datetime] = field(default_factory=dict)
    denied: set[tuple[str | None, str]] = field(default_factory=set)


class KeelMetrics:
    """The metrics of one runtime, in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._model_calls = Counter(
            "keel_model_calls_total", "Model calls that finished.", ["model"], registry=r
        )
        self._model_tokens = Counter(
            "keel_model_tokens_total",
            "Tokens of model calls: read (input) and written (output).",
            ["model", "direction"],
            registry=r,
        )
        self._model_seconds = Histogram(
            "keel_model_call_duration_seconds",
            "How long model calls took.",
            ["model"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self._tool_calls = Counter(
            "keel_tool_calls_total",
            "Tool calls that finished: ok, error, or denied by the guardrails.",
            ["tool", "outcome"],
            registry=r,
        )
        self._tool_seconds = Histogram(
            "keel_tool_call_duration_seconds",
            "How long tool calls took.",
            ["tool"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self._guardrail = Counter(
            "keel_guardrail_decisions_total",
            "Guardrail decisions on tool calls: allow, ask or deny.",
            ["decision"],
            registry=r,
        )
        self._approvals = Counter(
            "keel_approvals_answered_total",
            "Approvals answered: allowed, denied, or expired at their deadline.",
            ["decision"],
            registry=r,
        )
        self._approval_wait = Histogram(
            "keel_approval_wait_seconds",
            "How long approvals waited for their answer.",
            ["decision"],
            buckets=APPROVAL_BUCKETS,
            registry=r,
        )
        self._handoffs = Counter(
            "keel_handoffs_total", "Tasks an agent passed to another agent.", registry=r
        )
        self._delegations = Counter(
            "keel_delegations_total", "Sub-tasks agents delegated.", registry=r
        )
        self._step_seconds = Histogram(
            "keel_step_duration_seconds",
            "How long run-loop steps took, from entering a node to its exit, by node kind.",
            ["kind"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self._store = _StoreCounts()
        r.register(self._store)
        self._open: dict[str, _Open] = {}

    # -- fed by events -----------------------------------------------------------------

    def observe(self, event: TraceEvent) -> None:
        p = event.payload
        match event.type:
            case kinds.MODEL_CALL:
                model = str(p.get("model", ""))
                self._model_calls.labels(model).inc()
                self._model_tokens.labels(model, "input").inc(int(p.get("inputTokens") or 0))
                self._model_tokens.labels(model, "output").inc(int(p.get("outputTokens") or 0))
                self._model_seconds.labels(model).observe(float(p.get("durationMs") or 0) / 1000)
            case kinds.TOOL_RESULT:
                tool = str(p.get("tool", ""))
                call = (event.task_id, str(p.get("callId")))
                denied = call in self._session(event).denied
                outcome = "ok" if p.get("ok") else "denied" if denied else "error"
                self._tool_calls.labels(tool, outcome).inc()
                self._tool_seconds.labels(tool).observe(float(p.get("durationMs") or 0) / 1000)
            case kinds.GUARDRAIL_DECISION:
                verdict = str(p.get("verdict"))
                self._guardrail.labels(verdict).inc()
                if verdict == "deny":
                    self._session(event).denied.add((event.task_id, str(p.get("callId"))))
            case kinds.APPROVAL_REQUESTED:
                self._session(event).approvals[str(p.get("approvalId"))] = event.timestamp
            case kinds.APPROVAL_ANSWERED:
                decision = str(p.get("decision"))
                self._approvals.labels(decision).inc()
                asked = self._session(event).approvals.pop(str(p.get("approvalId")), None)
                if asked is not None:
                    waited = (event.timestamp - asked).total_seconds()
                    self._approval_wait.labels(decision).observe(waited)
            case kinds.HANDOFF:
                self._handoffs.inc()
            case kinds.TASK_DELEGATED:
                self._delegations.inc()
            case kinds.NODE_ENTER:
                node, kind = str(p.get("node")), str(p.get("kind", "node"))
                self._session(event).nodes[node] = (kind, event.timestamp)
            case kinds.NODE_EXIT:
                entered = self._session(event).nodes.pop(str(p.get("node")), None)
                if entered is not None:
                    kind, at = entered
                    self._step_seconds.labels(kind).observe((event.timestamp - at).total_seconds())
            case _ if event.type in kinds.SESSION_FINAL:
                self.finish(event.session_id)

    def finish(self, session_id: str) -> None:
        """Nothing more comes from `session_id` in this process: forget what it left open."""
        self._open.pop(session_id, None)

    def _session(self, event: TraceEvent) -> _Open:
        return self._open.setdefault(event.session_id, _Open())

    # -- scraped -----------------------------------------------------------------------

    async def refresh(self, engine: Engine) -> None:
        """Count sessions and tasks by status in the store, for the next `render`."""
        self._store.sessions, self._store.tasks = await engine.read(_count_in)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format (`content_type`)."""
        return generate_latest(self.registry)
