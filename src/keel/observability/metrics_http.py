"""A minimal HTTP endpoint for a process that has no web server of its own (`keel worker
--metrics-port`): `GET /metrics` answers the process's metrics, anything else 404.

Prometheus scrapes are small, rare GETs; a plain asyncio server is enough, and unlike a full
ASGI server it takes over no signal handlers from the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from keel.observability.metrics import KeelMetrics
from keel.store import Engine

_MAX_HEADER = 16_384


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@contextlib.asynccontextmanager
async def serve_metrics(
    metrics: KeelMetrics, engine: Engine, host: str, port: int
) -> AsyncIterator[asyncio.Server]:
    """Serve `GET /metrics` on host:port while the context is open."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = head[:_MAX_HEADER].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method == "GET" and path == "/metrics":
                await metrics.refresh(engine)
                answer = _response("200 OK", metrics.content_type, metrics.render())
            else:
                answer = _response("404 Not Found", "text/plain", b"only GET /metrics here\n")
            writer.write(answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
