"""A session's workspace, read-only: its snapshots and the diffs between them.

The workspace is found as `keel snapshots` finds it: from the directory the session's
config names and the record Keel keeps for it under its home. A session without one (no
directory, or not isolated) answers 404 with the reason.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from keel.server.state import SessionDep, State
from keel.types import KeelModel, Session
from keel.workspace import snapshots
from keel.workspace.errors import WorkspaceNotFound
from keel.workspace.model import Snapshot, Workspace
from keel.workspace.worktrees import WorkspaceManager

router = APIRouter(prefix="/v1", tags=["workspace"])

SnapshotId = Annotated[
    str | None,
    Query(max_length=64, description="A snapshot number (`3`) or a prefix of its commit."),
]


class SnapshotInfo(KeelModel):
    number: int
    commit: str
    label: str
    created_at: datetime
    files_changed: int


class SnapshotList(KeelModel):
    session_id: str
    workspace: str
    """Where the session's tools work."""
    snapshots: list[SnapshotInfo]
    """Oldest first: 0 is the state the workspace started from."""


def _info(snapshot: Snapshot) -> SnapshotInfo:
    return SnapshotInfo(
        number=snapshot.number,
        commit=snapshot.commit,
        label=snapshot.label,
        created_at=snapshot.created_at,
        files_changed=snapshot.files_changed,
    )


async def _workspace(session: Session, state: State) -> Workspace:
    path = (session.config or {}).get("workspace")
    if not isinstance(path, str) or not path:
        raise WorkspaceNotFound(
            f"session {session.id} has no workspace: it was started without a directory"
        )
    manager = WorkspaceManager(state.keel.settings.home)
    return await manager.find_session(session.id, Path(path))


@router.get("/sessions/{session_id}/snapshots", response_model=SnapshotList)
async def list_snapshots(session: SessionDep, state: State) -> SnapshotList:
    """The snapshots of the session's workspace, oldest first."""
    workspace = await _workspace(session, state)
    found = await snapshots.list_snapshots(workspace)
    return SnapshotList(
        session_id=session.id,
        workspace=str(workspace.path),
        snapshots=[_info(snapshot) for snapshot in found],
    )


@router.get(
    "/sessions/{session_id}/diff",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "A unified diff."}},
)
async def diff_snapshots(
    session: SessionDep, state: State, a: SnapshotId = None, b: SnapshotId = None
) -> PlainTextResponse:
    """A unified diff from snapshot `a` (default: the latest) to snapshot `b` (default:
    the files now); empty when they are the same."""
    workspace = await _workspace(session, state)
    patch = await snapshots.diff(workspace, a, b)
    return PlainTextResponse(patch)
