"""Traces leave the process over OTLP/HTTP when the standard `OTEL_*` variables ask for it,
and only then: a real HTTP receiver in the test decodes what arrives."""

from __future__ import annotations

import gzip
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from keel import Keel
from keel.errors import ConfigError
from keel.observability import tracer_provider_from_env

SOLO = [{"name": "solo", "role": "worker", "model": "scripted:worker"}]


def value(any_value: AnyValue) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.paths.append(self.path)
                received.content_types.append(self.headers.get("Content-Type", ""))
                received.requests.append(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def spans(self) -> list[tuple[dict[str, object], ProtoSpan]]:
        """(resource attributes, span) of everything received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope_spans.spans)
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


async def test_spans_reach_an_otlp_http_collector_named_by_the_environment(
    receiver: Receiver, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    async with await Keel.open(home) as keel:
        provider = keel.tracer_provider
        assert provider is not None
        try:
            session = await keel.create_session("Write the parser", SOLO)
            await keel.run(session.id)
            assert provider.force_flush(timeout_millis=10_000)
        finally:
            provider.shutdown()

    assert set(receiver.paths) == {"/v1/traces"}
    assert set(receiver.content_types) == {"application/x-protobuf"}
    spans = receiver.spans()
    assert {resource["service.name"] for resource, _ in spans} == {"keel"}
    by_name = {span.name: span for _, span in spans}
    assert set(by_name) == {"invoke_workflow team", "invoke_agent solo", "chat worker"}
    assert len({span.trace_id for _, span in spans}) == 1

    root, turn, chat = (
        by_name[n] for n in ("invoke_workflow team", "invoke_agent solo", "chat worker")
    )
    assert root.parent_span_id == b""
    assert turn.parent_span_id == root.span_id
    assert chat.parent_span_id == turn.span_id
    assert chat.kind == ProtoSpan.SpanKind.SPAN_KIND_CLIENT
    assert turn.kind == ProtoSpan.SpanKind.SPAN_KIND_INTERNAL
    attributes = {a.key: value(a.value) for a in chat.attributes}
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "scripted"
    assert attributes["gen_ai.request.model"] == "worker"
    assert attributes["gen_ai.conversation.id"] == session.id
    assert int(attributes["gen_ai.usage.input_tokens"]) > 0  # type: ignore[call-overload]
    assert int(attributes["gen_ai.usage.output_tokens"]) > 0  # type: ignore[call-overload]
    turn_attributes = {a.key: value(a.value) for a in turn.attributes}
    assert turn_attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn_attributes["gen_ai.agent.name"] == "solo"


def test_the_service_name_and_traces_endpoint_come_from_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.url}/custom/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agents-prod")
    provider = tracer_provider_from_env()
    assert provider is not None
    try:
        provider.get_tracer("test").start_span("probe").end()
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()
    assert receiver.paths == ["/custom/traces"]
    ((resource, span),) = receiver.spans()
    assert resource["service.name"] == "agents-prod"
    assert span.name == "probe"


def test_tracing_is_off_unless_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracer_provider_from_env() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracer_provider_from_env() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracer_provider_from_env() is None


async def test_the_console_exporter_prints_the_spans(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    async with await Keel.open(home) as keel:
        provider = keel.tracer_provider
        assert provider is not None
        try:
            session = await keel.create_session("Write the parser", SOLO)
            await keel.run(session.id)
            assert provider.force_flush(timeout_millis=10_000)
        finally:
            provider.shutdown()
    printed = capsys.readouterr().out
    assert '"name": "invoke_workflow team"' in printed
    assert f'"gen_ai.conversation.id": "{session.id}"' in printed


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin' is not one of them"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: Keel sends OTLP over HTTP; set it to http/protobuf",
        ),
    ],
)
def test_settings_keel_cannot_follow_are_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, setting in variables.items():
        monkeypatch.setenv(name, setting)
    with pytest.raises(ConfigError, match=message):
        tracer_provider_from_env()


def test_without_the_sdk_asking_for_traces_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with pytest.raises(ConfigError, match=r"the OpenTelemetry SDK is not installed .*keel\[otel\]"):
        tracer_provider_from_env()
