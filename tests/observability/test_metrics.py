"""Prometheus metrics: counters and histograms fed by the events of the sessions a runtime
runs, and sessions and tasks by status counted from the store when scraped."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from observed_sessions import run_busy_session
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from keel import Keel
from keel.events import kinds
from keel.observability import KeelMetrics
from keel.types import TraceEvent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: KeelMetrics) -> Samples:
    """Every sample of the rendered text: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def of(events: list[TraceEvent], kind: str) -> list[TraceEvent]:
    return [event for event in events if event.type == kind]


async def test_a_sessions_events_become_counters_and_histograms(keel: Keel, tmp_path: Path) -> None:
    keel.metrics = metrics = KeelMetrics()
    session = await run_busy_session(keel, tmp_path / "work")
    events = await keel.events.read(session.id)
    samples = scrape(metrics)

    tokens: Counter[tuple[str, str]] = Counter()
    for call in of(events, kinds.MODEL_CALL):
        tokens[(call.payload["model"], "input")] += call.payload["inputTokens"]
        tokens[(call.payload["model"], "output")] += call.payload["outputTokens"]
    for (model, direction), count in tokens.items():
        labels = (("direction", direction), ("model", model))
        assert samples[("keel_model_tokens_total", labels)] == count
    calls = Counter(call.payload["model"] for call in of(events, kinds.MODEL_CALL))
    for model, count in calls.items():
        assert samples[("keel_model_calls_total", (("model", model),))] == count
        assert samples[("keel_model_call_duration_seconds_count", (("model", model),))] == count

    results = of(events, kinds.TOOL_RESULT)
    tool_calls = {k: v for k, v in samples.items() if k[0] == "keel_tool_calls_total"}
    assert sum(tool_calls.values()) == len(results)
    assert samples[("keel_tool_calls_total", (("outcome", "denied"), ("tool", "write_file")))] == 1
    assert samples[("keel_tool_call_duration_seconds_count", (("tool", "write_file"),))] == 1

    verdicts = Counter(e.payload["verdict"] for e in of(events, kinds.GUARDRAIL_DECISION))
    assert verdicts["deny"] == 1
    for verdict, count in verdicts.items():
        assert samples[("keel_guardrail_decisions_total", (("decision", verdict),))] == count

    (asked,) = of(events, kinds.APPROVAL_REQUESTED)
    (answered,) = of(events, kinds.APPROVAL_ANSWERED)
    waited = (answered.timestamp - asked.timestamp).total_seconds()
    allowed = (("decision", "allowed"),)
    assert samples[("keel_approvals_answered_total", allowed)] == 1
    assert samples[("keel_approval_wait_seconds_count", allowed)] == 1
    assert abs(samples[("keel_approval_wait_seconds_sum", allowed)] - waited) < 1e-6
    assert samples[("keel_handoffs_total", ())] == 1
    assert samples[("keel_delegations_total", ())] == 1

    kinds_of = {e.payload["node"]: e.payload["kind"] for e in of(events, kinds.NODE_ENTER)}
    steps = Counter(kinds_of[e.payload["node"]] for e in of(events, kinds.NODE_EXIT))
    for kind, count in steps.items():
        assert samples[("keel_step_duration_seconds_count", (("kind", kind),))] == count


async def test_sessions_and_tasks_by_status_are_counted_from_the_store_when_scraped(
    keel: Keel,
) -> None:
    metrics = KeelMetrics()
    assert not [k for k in scrape(metrics) if k[0] in ("keel_sessions", "keel_tasks")]
    solo = [{"name": "solo", "role": "worker", "model": "scripted:worker"}]
    ran = await keel.create_session("Write the parser", solo)
    await keel.create_session("Write the docs", solo)
    await keel.run(ran.id)
    await metrics.refresh(keel.engine)
    samples = scrape(metrics)

    assert samples[("keel_sessions", (("status", "done"),))] == 1
    assert samples[("keel_sessions", (("status", "pending"),))] == 1
    assert samples[("keel_sessions", (("status", "running"),))] == 0
    tasks = Counter(task.status.value for task in await keel.tasks.list(ran.id))
    assert tasks["done"] > 0
    for status, count in tasks.items():
        assert samples[("keel_tasks", (("status", status),))] == count
    assert samples[("keel_tasks", (("status", "failed"),))] == 0


def test_each_runtime_counts_in_a_registry_of_its_own() -> None:
    first, second = KeelMetrics(), KeelMetrics()
    handoff = TraceEvent(
        id="s_1:1",
        seq=1,
        run_id="r_1",
        session_id="s_1",
        task_id="t_1",
        actor="keel",
        type=kinds.HANDOFF,
        payload={"from": "a", "to": "b", "note": ""},
        timestamp=datetime.now(UTC),
    )
    first.observe(handoff)
    assert scrape(first)[("keel_handoffs_total", ())] == 1
    assert scrape(second)[("keel_handoffs_total", ())] == 0
    assert REGISTRY.get_sample_value("keel_handoffs_total") is None
    assert first.content_type.startswith("text/plain; version=")
