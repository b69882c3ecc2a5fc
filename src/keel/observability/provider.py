"""The tracer provider the standard `OTEL_*` environment variables ask for, or None.

Keel traces nothing unless asked. Tracing is on when `OTEL_TRACES_EXPORTER` names `otlp` or
`console` (comma-separated), or when it is unset and an OTLP endpoint is given
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`); `OTEL_SDK_DISABLED=true`
turns it off whatever else is set. OTLP goes over HTTP (protobuf); the exporter reads the
endpoint, headers, timeout and certificates from the usual variables itself. The service is
`OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `keel`.

The OpenTelemetry SDK is an optional extra (`keel[otel]`): it is imported only when tracing
is asked for, and its absence then is a `ConfigError` that says what to install.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from keel.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

OTLP = "otlp"
CONSOLE = "console"
NONE = "none"
DEFAULT_SERVICE_NAME = "keel"
HTTP_PROTOBUF = "http/protobuf"

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


def traces_exporters() -> list[str]:
    """The exporters the environment asks for (`otlp`, `console`); empty: no tracing."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        return [OTLP] if any(os.environ.get(name, "").strip() for name in _ENDPOINTS) else []
    names = list(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in (OTLP, CONSOLE, NONE)]
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={raw}: Keel exports traces with 'otlp' (OTLP over HTTP) "
            f"or 'console'; '{unknown[0]}' is not one of them (or say 'none')"
        )
    return [] if NONE in names else names


def _check_protocol() -> None:
    for name in _PROTOCOLS:
        value = os.environ.get(name, "").strip()
        if value and value != HTTP_PROTOBUF:
            raise ConfigError(
                f"{name}={value}: Keel sends OTLP over HTTP; set it to {HTTP_PROTOBUF} (or unset "
                "it) and point the endpoint at the collector's HTTP port (4318)"
            )
        if value:
            return


def tracer_provider_from_env() -> TracerProvider | None:
    """A tracer provider exporting as `OTEL_*` asks, or None when tracing is off."""
    exporters = traces_exporters()
    if not exporters:
        return None
    if OTLP in exporters:
        _check_protocol()
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        if OTLP in exporters:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as error:
        asked = os.environ.get("OTEL_TRACES_EXPORTER") or "an OTLP endpoint"
        raise ConfigError(
            f"tracing is on ({asked}) but the OpenTelemetry SDK is not installed "
            f"({error.name}): pip install 'keel[otel]'"
        ) from None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for name in exporters:
        exporter = OTLPSpanExporter() if name == OTLP else ConsoleSpanExporter(out=sys.stdout)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
