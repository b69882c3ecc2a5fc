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

from fastapi import FastAPI

from keel import __version__
from keel.orchestrator import Keel
from keel.server import problems
from keel.server.routes import approvals, blackboard, health, registry, sessions
from keel.server.state import ServerState
from keel.server.streaming import HEARTBEAT_S, Hub
from keel.workers import Worker
from keel.workers.worker import LEASE_S


@dataclass(frozen=True)
class ServerOptions:
    workspace_root: Path
    policy_path: Path | None = None
    """Default: keel.policy.yaml in the Keel home."""
    workers: int = 1
    worker_capacity: int = 8
    lease_s: float = LEASE_S
    heartbeat_s: float = HEARTBEAT_S


def create_app(open_keel: Callable[[], Awaitable[Keel]], options: ServerOptions) -> FastAPI:
    """The app; it opens Keel (and starts its workers) when it starts, closes it at the end."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keel = await open_keel()
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
    for module in (sessions, approvals, registry, blackboard, health):
        app.include_router(module.router)
    return app
