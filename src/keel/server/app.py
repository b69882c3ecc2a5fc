"""The session API: a FastAPI app over one Keel store, with embedded workers.

    keel serve --port 8420                  # SQLite in ./.keel, one embedded worker
    KEEL_DATABASE_URL=postgresql://... keel serve --workers 0   # API only; `keel worker`s run

Runs belong to workers, not to connections: creating a session queues it, a worker (here or
in another process) claims it with a lease and runs it, and clients watch its events. A
client that disconnects loses nothing; a server that restarts finds its sessions on the
queue and resumes them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from keel import __version__
from keel.gateway.a2a import mount_a2a
from keel.observability import KeelMetrics
from keel.orchestrator import Keel
from keel.server import problems, ui
from keel.server.routes import approvals, blackboard, health, registry, sessions, workspace
from keel.server.state import ServerState
from keel.server.streaming import HEARTBEAT_S, Hub
from keel.workers import Worker
from keel.workers.worker import LEASE_S

if TYPE_CHECKING:
    from keel.gateway.mcp_http import McpHttp


@dataclass(frozen=True)
class ServerOptions:
    workspace_root: Path
    policy_path: Path | None = None
    """Default: keel.policy.yaml in the Keel home."""
    workers: int = 1
    worker_capacity: int = 8
    lease_s: float = LEASE_S
    heartbeat_s: float = HEARTBEAT_S
    host: str = "127.0.0.1"
    """The address the server listens on (the MCP mount checks Host headers against it)."""


def _mcp_app(state: ServerState, host: str) -> McpHttp | None:
    try:
        from keel.gateway.mcp_http import McpHttp
    except ImportError:  # the `mcp` extra is not installed: no /mcp
        return None
    return McpHttp(state, host=host)


class _McpMount:
    """`/mcp`: the MCP Streamable HTTP app made when the server starts (it needs Keel)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mcp: McpHttp | None = getattr(self._app.state, "mcp", None)
        if mcp is None:
            response = problems.problem(404, "MCP is not available: pip install 'keel[mcp]'")
            await response(scope, receive, send)
            return
        await mcp(scope, receive, send)


def create_app(open_keel: Callable[[], Awaitable[Keel]], options: ServerOptions) -> FastAPI:
    """The app; it opens Keel (and starts its workers) when it starts, closes it at the end."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keel = await open_keel()
        keel.metrics = KeelMetrics()  # before any worker runs a session
        policy = options.policy_path or Path(keel.settings.home) / "keel.policy.yaml"
        state = ServerState(
            keel=keel,
            hub=Hub(keel.events),
            workspace_root=options.workspace_root.resolve(),
            policy_path=policy,
            heartbeat_s=options.heartbeat_s,
        )
        app.state.keel = state
        runs: list[asyncio.Task[None]] = []
        async with contextlib.AsyncExitStack() as stack:
            mcp = _mcp_app(state, options.host)
            if mcp is not None:
                await stack.enter_async_context(mcp.running())
            app.state.mcp = mcp
            try:
                for _ in range(options.workers):
                    worker = Worker(keel, capacity=options.worker_capacity, lease_s=options.lease_s)
                    state.workers.append(worker)
                    runs.append(asyncio.create_task(worker.run()))
                state.ready = True
                yield
            finally:
                state.ready = False
                for run in runs:
                    run.cancel()
                await asyncio.gather(*runs, return_exceptions=True)
                await state.hub.close()
                await keel.close()

    app = FastAPI(
        title="Keel session API",
        version=__version__,
        description="Sessions, streaming events, cancel, resume and approvals of a Keel "
        "runtime. Every /v1 endpoint takes `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (sessions, approvals, registry, blackboard, workspace, health):
        app.include_router(module.router)
    ui.mount(app)
    # A route, not a mount: `/mcp` itself is the endpoint (no redirect to `/mcp/`).
    app.router.routes.append(Route("/mcp", _McpMount(app), methods=["GET", "POST", "DELETE"]))
    mount_a2a(app)
    return app
