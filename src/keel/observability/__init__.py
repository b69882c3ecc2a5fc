"""Observability derived from the event log: OpenTelemetry traces (GenAI semantic
conventions) and Prometheus metrics of the sessions this process runs.

Instrumentation does not live in the orchestrator: every action is already an event, and
`observe_session` feeds a running session's events to the metrics and the tracer. The
tracer (`keel.observability.tracing`) needs the optional `keel[otel]` extra and is imported
only when `tracer_provider_from_env` says tracing is on.
"""

from __future__ import annotations

from keel.observability.follow import EventSink, observe_session
from keel.observability.metrics import KeelMetrics
from keel.observability.provider import tracer_provider_from_env

__all__ = ["EventSink", "KeelMetrics", "observe_session", "tracer_provider_from_env"]
