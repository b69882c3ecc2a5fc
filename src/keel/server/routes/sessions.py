"""Sessions: create (queued for a worker), list, read, delete; follow-up messages; the task
tree; events as JSON pages or a resumable SSE stream; cancel and resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from keel.registry import build_tree
from keel.registry.tasks import TaskNode
from keel.server.problems import ApiProblem, responses
from keel.server.schemas import (
    MAX_SEQ,
    Accepted,
    CancelRequest,
    CreateSession,
    EventPage,
    MessageSent,
    SendMessage,
    SessionList,
    TaskTree,
    TaskTreeNode,
)
from keel.server.state import CallerDep, ServerState, SessionDep, State
from keel.server.streaming import HEARTBEAT_FRAME
from keel.server.tokens import Caller
from keel.types import AgentDefinition, JsonObject, Session, SessionStatus

router = APIRouter(prefix="/v1", tags=["sessions"])

_SERVER_KEYS = ("flow", "workflow")


async def _agents(
    state: ServerState, caller: Caller, wanted: list[str | AgentDefinition] | None
) -> list[AgentDefinition]:
    registry = state.keel.agents
    if wanted is None:
        found = await registry.latest()
        if not found:
            raise ApiProblem(
                422, "no agents are registered: name agents, or register some (PUT /v1/agents)"
            )
        return found
    if not wanted:
        raise ApiProblem(422, "a session needs at least one agent")
    if any(isinstance(item, AgentDefinition) for item in wanted) and not caller.admin:
        raise ApiProblem(
            403,
            "only an admin token may register agent definitions; name registered agents "
            "instead (GET /v1/agents lists them)",
        )
    return [
        item if isinstance(item, AgentDefinition) else await registry.get(item) for item in wanted
    ]


def api_session_config(state: ServerState, caller: Caller, given: JsonObject | None) -> JsonObject:
    """The session's config as the server allows it: workspaces only under the server's
    workspace root, and the server's policy unless an admin names another.

    A session that names no workspace works in the root itself, as it is (no snapshots):
    left alone, its tools would work in the server's own directory, outside the root."""
    config = dict(given or {})
    for key in _SERVER_KEYS:
        if key in config:
            raise ApiProblem(422, f"config.{key} is set by the server; remove it")
    if "policy" in config and not caller.admin:
        raise ApiProblem(403, "only an admin token may choose a session's policy file")
    root = state.workspace_root.resolve()
    workspace = config.get("workspace")
    if workspace is None:
        config["workspace"] = str(root)
        config.setdefault("isolate", False)
    else:
        if not isinstance(workspace, str) or not workspace.strip() or "\0" in workspace:
            raise ApiProblem(422, "config.workspace must be a directory path")
        path = Path(workspace)
        path = (path if path.is_absolute() else root / path).resolve()
        if path != root and root not in path.parents:
            raise ApiProblem(
                422, f"config.workspace must be inside the server's workspace root {root}"
            )
        config["workspace"] = str(path)
    if "policy" not in config and state.policy_path.exists():
        config["policy"] = str(state.policy_path)
    return config


@router.post("/sessions", status_code=201, response_model=Session, responses=responses(403))
async def create_session(body: CreateSession, state: State, caller: CallerDep) -> Session:
    """Create a session and queue it; a worker runs it (follow its events to watch)."""
    if (body.goal is None) == (body.workflow is None):
        raise ApiProblem(422, "give either a goal (a team session) or a workflow, not both")
    keel = state.keel
    agents = await _agents(state, caller, body.agents)
    config = api_session_config(state, caller, body.config)
    if body.workflow is not None:
        session = await keel.create_workflow_session(
            body.workflow, agents, user_id=caller.user_id, config=config, budget=body.budget
        )
    else:
        assert body.goal is not None
        if not body.goal.strip():
            raise ApiProblem(422, "a session needs a goal: say what the agents should do")
        session = await keel.create_session(
            body.goal, agents, user_id=caller.user_id, config=config, budget=body.budget
        )
    await keel.submit(session.id)
    return await keel.sessions.get(session.id)


@router.get("/sessions", response_model=SessionList)
async def list_sessions(
    state: State,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: SessionStatus | None = None,
) -> SessionList:
    """The caller's sessions, newest first."""
    found = await state.keel.sessions.list(limit if status is None else 500, caller.user_id)
    if status is not None:
        found = [s for s in found if s.status is status][:limit]
    return SessionList(sessions=found)


@router.get("/sessions/{session_id}", response_model=Session)
async def get_session(session: SessionDep) -> Session:
    return session


@router.delete("/sessions/{session_id}", status_code=204, responses=responses(409))
async def delete_session(session: SessionDep, state: State) -> Response:
    """Delete a session that is not running (cancel it first)."""
    await state.keel.delete_session(session.id)
    return Response(status_code=204)


@router.post(
    "/sessions/{session_id}/messages",
    status_code=201,
    response_model=MessageSent,
    responses=responses(409),
)
async def send_message(
    session: SessionDep, body: SendMessage, state: State, caller: CallerDep
) -> MessageSent:
    """A follow-up message; the session's agents see it in their next model call."""
    number = await state.keel.message(session.id, body.text, user_id=caller.user_id)
    return MessageSent(session_id=session.id, number=number)


def _node(node: TaskNode) -> TaskTreeNode:
    return TaskTreeNode(task=node.task, children=[_node(child) for child in node.children])


@router.get("/sessions/{session_id}/tasks", response_model=TaskTree)
async def task_tree(session: SessionDep, state: State) -> TaskTree:
    tasks = await state.keel.tasks.list(session.id)
    return TaskTree(session_id=session.id, tasks=[_node(node) for node in build_tree(tasks)])


_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of events (JSON), or with `Accept: text/event-stream` a "
        "stream of them, each SSE `id` the event's sequence number.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _resume_point(after: int | None, last_event_id: str | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        try:
            value = int(last_event_id.strip())
        except ValueError:
            raise ApiProblem(422, "Last-Event-ID must be an event sequence number") from None
        if not 0 <= value <= MAX_SEQ:
            raise ApiProblem(422, f"Last-Event-ID must be a sequence number from 0 to {MAX_SEQ}")
        return max(value, after or 0)
    return after or 0


@router.get("/sessions/{session_id}/events", response_model=EventPage, responses=_SSE_DOC)
async def session_events(
    session: SessionDep,
    state: State,
    request: Request,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="Only events after this seq.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> Any:
    """The session's events after `after` (or `Last-Event-ID`). With `Accept:
    text/event-stream`: a live stream that ends after the session's final event."""
    start = _resume_point(after, last_event_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(state, session.id, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    events = await state.keel.events.read(session.id, start, limit=limit)
    return EventPage(events=events, last_seq=await state.keel.events.last_seq(session.id))


async def _stream(state: ServerState, session_id: str, after: int) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    async for frames in state.hub.subscribe(session_id, after, heartbeat_s=state.heartbeat_s):
        yield HEARTBEAT_FRAME if frames is None else frames


@router.post(
    "/sessions/{session_id}/cancel",
    status_code=202,
    response_model=Accepted,
    responses=responses(409),
)
async def cancel_session(
    session: SessionDep, state: State, caller: CallerDep, body: CancelRequest | None = None
) -> Accepted:
    """Ask to cancel the session (or one task and what depends on it). The worker running
    it stops within a second; a queued session is cancelled when a worker takes it."""
    request = body or CancelRequest()
    if session.status.is_final:
        raise ApiProblem(409, f"session {session.id} has already ended ({session.status.value})")
    if request.task_id is not None:
        task = await state.keel.tasks.get(request.task_id)
        if task.session_id != session.id:
            raise ApiProblem(404, f"no task '{request.task_id}' in session {session.id}")
    await state.keel.cancel(
        session.id, request.task_id, reason=request.reason, actor=caller.user_id
    )
    queued = await state.keel.submit(session.id)  # a worker must take the request in
    return Accepted(session_id=session.id, queued=queued)


@router.post(
    "/sessions/{session_id}/resume",
    status_code=202,
    response_model=Accepted,
    responses=responses(409),
)
async def resume_session(session: SessionDep, state: State) -> Accepted:
    """Queue an interrupted session again; a worker resumes it from its checkpoint."""
    queued = await state.keel.submit(session.id)
    return Accepted(session_id=session.id, queued=queued)
