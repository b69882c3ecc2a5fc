"""A session's run is one trace whose spans follow the OpenTelemetry GenAI conventions:
`invoke_workflow` for the run, `invoke_agent` for each agent's turn on a task, `chat` for
model calls and `execute_tool` for tool calls, timed by the events; handoffs, delegations,
guardrail decisions and approvals are span events."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from observed_sessions import create_busy_session, run_busy_session, wait_for_approval
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from keel import Keel
from keel.cli.builtin_team import default_team
from keel.cli.demo import DEMO_GOAL, create_demo_repo
from keel.events import kinds
from keel.models import register_script
from keel.observability import observe_session
from keel.types import SessionStatus, TraceEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(event: TraceEvent) -> int:
    return (event.timestamp - EPOCH) // timedelta(microseconds=1) * 1000


class Trace:
    def __init__(self, spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.by_id = {span.context.span_id: span for span in self.spans}

    def named(self, prefix: str) -> list[ReadableSpan]:
        return sorted(
            (s for s in self.spans if s.name.startswith(prefix)), key=lambda s: s.start_time or 0
        )

    def root(self) -> ReadableSpan:
        (root,) = [span for span in self.spans if span.parent is None]
        return root

    def parent(self, span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None
        return self.by_id[span.parent.span_id]


async def test_a_team_session_is_one_trace_of_agent_turns_model_calls_and_tool_calls(
    runtime: Keel, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    repo = await asyncio.to_thread(create_demo_repo, tmp_path)
    agents = [a.model_dump(by_alias=True, exclude={"version"}) for a in default_team()]
    session = await runtime.create_session(DEMO_GOAL, agents, config={"workspace": str(repo)})
    await runtime.run(session.id)
    events = await runtime.events.read(session.id)
    trace = Trace(exporter.get_finished_spans())

    assert len({span.context.trace_id for span in trace.spans}) == 1
    root = trace.root()
    assert root.name == "invoke_workflow team"
    assert root.kind is SpanKind.INTERNAL
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == "team"
    assert root.attributes["gen_ai.conversation.id"] == session.id
    assert root.attributes["keel.session.status"] == "done"
    assert root.start_time == ns(next(e for e in events if e.type == kinds.SESSION_STARTED))
    assert root.end_time == ns(next(e for e in events if e.type == kinds.SESSION_COMPLETED))

    turns = trace.named("invoke_agent ")
    assigned = [e.payload["assignedAgent"] for e in events if e.type == kinds.TASK_CREATED]
    assert Counter(t.name for t in turns) == Counter(f"invoke_agent {a}" for a in assigned)
    assert {"planner", "tester", "coder", "reviewer"} <= set(assigned)
    for turn in turns:
        assert turn.kind is SpanKind.INTERNAL
        assert trace.parent(turn) is root
        attributes = dict(turn.attributes or {})
        assert attributes["gen_ai.operation.name"] == "invoke_agent"
        assert turn.name == f"invoke_agent {attributes['gen_ai.agent.name']}"
        assert attributes["gen_ai.agent.version"] == "1"
        assert attributes["gen_ai.provider.name"] == "scripted"
        assert attributes["keel.task.status"] == "done"

    calls = [e for e in events if e.type == kinds.MODEL_CALL]
    chats = trace.named("chat ")
    assert len(chats) == len(calls)
    for chat, call in zip(chats, calls, strict=True):
        provider, model = call.payload["model"].split(":")
        attributes = dict(chat.attributes or {})
        assert chat.name == f"chat {model}"
        assert chat.kind is SpanKind.CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == provider
        assert attributes["gen_ai.request.model"] == model
        assert attributes["gen_ai.usage.input_tokens"] == call.payload["inputTokens"]
        assert attributes["gen_ai.usage.output_tokens"] == call.payload["outputTokens"]
        turn = trace.parent(chat)
        assert turn.attributes is not None
        assert turn.attributes["gen_ai.agent.name"] == call.payload["agent"]
        assert turn.attributes["keel.task.id"] == call.task_id
        assert chat.end_time == ns(call)
        assert turn.start_time is not None
        assert chat.start_time is not None
        assert turn.start_time <= chat.start_time <= chat.end_time

    started = {(e.task_id, e.payload["callId"]): e for e in events if e.type == kinds.TOOL_CALL}
    finished = {(e.task_id, e.payload["callId"]): e for e in events if e.type == kinds.TOOL_RESULT}
    tools = trace.named("execute_tool ")
    assert len(tools) == len(started) > 0
    for tool in tools:
        attributes = dict(tool.attributes or {})
        key = (attributes["keel.task.id"], attributes["gen_ai.tool.call.id"])
        assert tool.name == f"execute_tool {attributes['gen_ai.tool.name']}"
        assert attributes["gen_ai.operation.name"] == "execute_tool"
        assert attributes["gen_ai.tool.name"] == started[key].payload["tool"]
        assert tool.start_time == ns(started[key])
        assert tool.end_time == ns(finished[key])
        assert (trace.parent(tool).attributes or {})["keel.task.id"] == key[0]
        (decision,) = tool.events
        assert decision.name == "keel.guardrail.decision"
        assert decision.attributes is not None
        assert decision.attributes["keel.guardrail.verdict"] == "allow"
        assert decision.attributes["gen_ai.tool.call.id"] == key[1]


async def test_handoffs_delegations_guardrail_decisions_and_approvals_are_span_events(
    runtime: Keel, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    finished = await run_busy_session(runtime, tmp_path / "work")
    assert finished.status is SessionStatus.DONE
    trace = Trace(exporter.get_finished_spans())
    root = trace.root()
    (lead,) = trace.named("invoke_agent lead")
    (helper,) = trace.named("invoke_agent helper")
    (closer,) = trace.named("invoke_agent closer")

    lead_events = {event.name: dict(event.attributes or {}) for event in lead.events}
    assert lead_events["keel.task.delegated"]["keel.delegation.agent"] == "helper"
    assert lead_events["keel.task.delegated"]["gen_ai.tool.call.id"] == "d1"
    assert lead_events["keel.handoff"]["keel.handoff.from"] == "lead"
    assert lead_events["keel.handoff"]["keel.handoff.to"] == "closer"
    assert lead_events["keel.handoff"]["keel.handoff.note"] == "wrap up"

    # the delegated task runs inside the turn of the agent that waits for it
    assert trace.parent(helper) is lead
    # after the handoff the task is the closer's: a new turn of the same task
    assert trace.parent(closer) is root
    assert (closer.attributes or {})["keel.task.id"] == (lead.attributes or {})["keel.task.id"]
    assert lead.end_time is not None
    assert closer.start_time is not None
    assert lead.end_time <= closer.start_time

    approvals = [(e.name, dict(e.attributes or {})) for e in helper.events]
    assert [name for name, _ in approvals] == [
        "keel.approval.requested",
        "keel.approval.answered",
        "keel.approval.applied",
    ]
    requested, answered, _ = (attributes for _, attributes in approvals)
    assert requested["gen_ai.tool.name"] == "run_command"
    assert requested["keel.approval.kind"] == "guardrail"
    assert any("pushes need a person" in r for r in requested["keel.approval.reasons"])
    assert answered["keel.approval.decision"] == "allowed"
    assert answered["keel.approval.by"] == "user"

    asked, ran = trace.named("execute_tool run_command")
    assert (asked.attributes or {})["keel.tool.outcome"] == "awaiting_approval"
    assert asked.status.status_code is StatusCode.UNSET
    assert trace.parent(asked) is trace.parent(ran) is helper

    (denied,) = trace.named("execute_tool write_file")
    assert denied.status.status_code is StatusCode.ERROR
    assert (denied.attributes or {})["error.type"] == "guardrail_denied"
    (decision,) = denied.events
    assert decision.name == "keel.guardrail.decision"
    assert (decision.attributes or {})["keel.guardrail.verdict"] == "deny"
    assert (decision.attributes or {})["keel.guardrail.risk"] == 95


async def test_a_failed_task_and_session_are_errors_with_the_reason(
    runtime: Keel, exporter: InMemorySpanExporter
) -> None:
    register_script("obs-mute", [])
    session = await runtime.create_session(
        "Say something", [{"name": "mute", "role": "worker", "model": "scripted:obs-mute"}]
    )
    finished = await runtime.run(session.id)
    assert finished.status is SessionStatus.FAILED
    trace = Trace(exporter.get_finished_spans())
    root = trace.root()
    assert root.status.status_code is StatusCode.ERROR
    assert (root.attributes or {})["error.type"] == "session_failed"
    (turn,) = trace.named("invoke_agent mute")
    assert turn.status.status_code is StatusCode.ERROR
    assert turn.status.description
    assert (turn.attributes or {})["error.type"] == "task_failed"
    assert (turn.attributes or {})["keel.task.status"] == "failed"


async def test_a_resumed_session_is_traced_from_the_resume_on_in_a_new_trace(
    runtime: Keel, exporter: InMemorySpanExporter, home: Path, tmp_path: Path
) -> None:
    session = await create_busy_session(runtime, tmp_path / "work")
    running = asyncio.create_task(runtime.run(session.id))
    approval = await wait_for_approval(runtime, session.id)
    running.cancel()  # the process stops while the session waits for a person
    await asyncio.gather(running, return_exceptions=True)
    first = Trace(exporter.get_finished_spans())
    assert (first.root().attributes or {})["keel.run.interrupted"] is True
    stopped_at = await runtime.events.last_seq(session.id)

    later = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(later))
    async with await Keel.open(home, database_url=runtime.settings.database_url) as again:
        again.tracer_provider = provider
        await again.answer(approval, allow=True)
        finished = await again.run(session.id)
        events = await again.events.read(session.id, stopped_at)
    assert finished.status is SessionStatus.DONE
    second = Trace(later.get_finished_spans())
    root = second.root()
    assert root.context.trace_id != first.root().context.trace_id
    assert (root.attributes or {})["keel.session.resumed"] is True
    calls = [e for e in events if e.type == kinds.MODEL_CALL]
    assert len(second.named("chat ")) == len(calls)  # nothing from before is traced again
    (helper,) = second.named("invoke_agent helper")  # named from the events it sees
    assert trace_names(second) >= {"invoke_agent lead", "invoke_agent closer"}
    assert [e.name for e in helper.events] == ["keel.approval.applied"]
    provider.shutdown()


def trace_names(trace: Trace) -> set[str]:
    return {span.name for span in trace.spans}


async def test_a_trace_made_from_the_log_afterwards_is_the_trace_made_live(
    runtime: Keel, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    session = await run_busy_session(runtime, tmp_path / "work")
    live = exporter.get_finished_spans()
    events = await runtime.events.read(session.id)
    run_started = next(e.seq for e in events if e.type == kinds.SESSION_STARTED)
    replayed = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(replayed))
    async with observe_session(
        runtime.events, session.id, run_started - 1, tracer_provider=provider
    ):
        pass

    def shape(spans: tuple[ReadableSpan, ...]) -> list[tuple[object, ...]]:
        names = {span.context.span_id: span.name for span in spans}
        return sorted(
            (
                span.name,
                names.get(span.parent.span_id) if span.parent else None,
                span.start_time,
                span.end_time,
                sorted((k, str(v)) for k, v in (span.attributes or {}).items()),
                [event.name for event in span.events],
            )
            for span in spans
        )

    assert shape(replayed.get_finished_spans()) == shape(live)
    provider.shutdown()


async def test_a_declared_workflow_is_traced_under_its_name_with_its_steps_as_events(
    runtime: Keel, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    spec = {
        "name": "draft-and-review",
        "start": "draft",
        "nodes": {
            "draft": {"agent": "writer", "goal": "Write a haiku", "next": "review"},
            "review": {"agent": "critic", "goal": "Review this: {draft}"},
        },
    }
    agents = [
        {"name": "writer", "role": "worker", "model": "scripted:worker"},
        {"name": "critic", "role": "worker", "model": "scripted:worker"},
    ]
    session = await runtime.create_workflow_session(
        spec, agents, config={"workspace": str(tmp_path)}
    )
    finished = await runtime.run(session.id)
    assert finished.status is SessionStatus.DONE
    trace = Trace(exporter.get_finished_spans())
    root = trace.root()
    assert root.name == "invoke_workflow draft-and-review"
    assert (root.attributes or {})["gen_ai.workflow.name"] == "draft-and-review"
    writer, critic = trace.named("invoke_agent ")
    assert (writer.name, critic.name) == ("invoke_agent writer", "invoke_agent critic")
    assert trace.parent(writer) is trace.parent(critic) is root
    assert [trace.parent(chat).name for chat in trace.named("chat ")] == [writer.name, critic.name]
    steps = [
        (e.name, (e.attributes or {})["keel.workflow.step.step"])
        for span in (root, writer, critic)
        for e in span.events
        if e.name.startswith("keel.workflow.step.")
    ]
    assert sorted(steps) == [
        ("keel.workflow.step.finished", "draft#1"),
        ("keel.workflow.step.finished", "review#1"),
        ("keel.workflow.step.started", "draft#1"),
        ("keel.workflow.step.started", "review#1"),
    ]
