"""Observability fixtures: a runtime on a SQLite file and spans kept in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from keel import Keel


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
async def runtime(home: Path, provider: TracerProvider) -> AsyncIterator[Keel]:
    """A runtime on SQLite that traces into `exporter`."""
    keel = await Keel.open(home, database_url=f"sqlite:///{home / 'keel.db'}")
    keel.tracer_provider = provider
    try:
        yield keel
    finally:
        await keel.close()
