"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from keel.server.problems import ApiProblem
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


@router.get("/readyz", response_model=Health, responses={503: {"description": "Not ready"}})
async def readyz(state: State) -> Health:
    """Ready to serve: started, and the database answers."""
    if not state.ready:
        raise ApiProblem(503, "the server is starting")
    try:
        await state.keel.engine.read(lambda tx: tx.fetchone("SELECT 1"))
    except Exception as error:
        raise ApiProblem(503, f"the database does not answer: {type(error).__name__}") from None
    return await healthz(state)
