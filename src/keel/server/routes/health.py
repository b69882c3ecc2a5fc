"""Liveness, readiness, and Prometheus metrics (no token needed: counts only, no data)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keel.server.problems import ApiProblem, responses
from keel.server.schemas import Health
from keel.server.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(state: State) -> Health:
    """The process is up (it may still be starting)."""
    return Health(
        status="ok" if state.ready else "starting",
        database=state.keel.engine.dialect,
        workers=len(state.workers),
        subscribers=state.hub.subscribers,
    )


@router.get("/readyz", response_model=Health, responses=responses(503))
async def readyz(state: State) -> Health:
    """Ready to serve: started, and the database answers."""
    if not state.ready:
        raise ApiProblem(503, "the server is starting")
    try:
        await state.keel.engine.read(lambda tx: tx.fetchone("SELECT 1"))
    except Exception as error:
        raise ApiProblem(503, f"the database does not answer: {type(error).__name__}") from None
    return await healthz(state)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(state: State) -> Response:
    """Sessions and tasks by status (from the store), and what this process's workers
    ran: model calls and tokens, tool calls, guardrail decisions, approval waits, step
    latencies."""
    collected = state.keel.metrics
    if collected is None:
        raise ApiProblem(404, "metrics are off in this server")
    await collected.refresh(state.keel.engine)
    return Response(collected.render(), media_type=collected.content_type)
