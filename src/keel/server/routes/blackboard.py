"""A session's blackboard, read-only: the facts it can see and its artifacts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keel.blackboard import Actor
from keel.orchestrator.session_config import SessionConfig
from keel.server.problems import ApiProblem
from keel.server.schemas import ArtifactList, FactList
from keel.server.state import SessionDep, State
from keel.types import MemoryScope

router = APIRouter(prefix="/v1", tags=["blackboard"])


@router.get("/sessions/{session_id}/facts", response_model=FactList)
async def session_facts(session: SessionDep, state: State) -> FactList:
    """The facts and decisions the session's agents can see: its own, and its project's."""
    project = SessionConfig.read(session.config).project_id()
    actor = Actor("api", session.id, state.keel.run_id, MemoryScope.PROJECT, project)
    return FactList(facts=await state.keel.facts.visible(actor))


@router.get("/sessions/{session_id}/artifacts", response_model=ArtifactList)
async def session_artifacts(session: SessionDep, state: State) -> ArtifactList:
    return ArtifactList(artifacts=await state.keel.artifacts.list(session_id=session.id))


@router.get(
    "/sessions/{session_id}/artifacts/{artifact_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_artifact(artifact_id: str, session: SessionDep, state: State) -> Response:
    """The artifact's content, checked against its checksum."""
    stored = await state.keel.artifacts.list(session_id=session.id)
    if artifact_id not in {artifact.id for artifact in stored}:
        raise ApiProblem(404, f"no artifact '{artifact_id}' in session {session.id}")
    artifact, content = await state.keel.artifacts.get(artifact_id)
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in artifact.name)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe_name}"',
            "X-Checksum-Sha256": artifact.checksum or "",
        },
    )
