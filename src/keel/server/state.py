"""What every request of the session API shares, and who it acts for.

Requests carry `Authorization: Bearer <token>`; the token maps to a user. A session belongs
to the user who created it: another user asking for it gets 404, as if it did not exist,
so ids leak nothing. Admin tokens may also change the agent registry and the policy, and
see every user's sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keel.errors import SessionNotFound
from keel.orchestrator import Keel
from keel.server.problems import ApiProblem
from keel.server.streaming import Hub
from keel.server.tokens import Caller, verify_token
from keel.types import Session
from keel.workers import Worker


@dataclass
class ServerState:
    keel: Keel
    hub: Hub
    workspace_root: Path
    """API sessions may only work in directories under this one."""
    policy_path: Path
    """The server's policy file, applied to every session created through the API."""
    workers: list[Worker] = field(default_factory=list)
    heartbeat_s: float = 15.0
    ready: bool = False


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.keel
    return state


State = Annotated[ServerState, Depends(server_state)]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="keel"'}
_BEARER = HTTPBearer(
    auto_error=False,
    description="An API token: `keel token create USER` prints one (an admin's: `--admin`).",
)


async def authenticate(request: Request, state: State) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "this endpoint needs an API token: send 'Authorization: Bearer <token>' "
            "(create one with `keel token create USER`)",
            _CHALLENGE,
        )
    caller = await verify_token(state.keel.engine, token.strip())
    if caller is None:
        raise ApiProblem(401, "the API token is unknown or was revoked", _CHALLENGE)
    return caller


async def _caller(
    request: Request,
    state: State,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Caller:
    """`authenticate` as a dependency; `_BEARER` only puts the scheme in the OpenAPI."""
    return await authenticate(request, state)


CallerDep = Annotated[Caller, Depends(_caller)]


async def require_admin(caller: CallerDep) -> Caller:
    if not caller.admin:
        raise ApiProblem(403, "only an admin token may change the agent registry or the policy")
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]


async def owned_session(session_id: str, state: State, caller: CallerDep) -> Session:
    """The session, if the caller may see it; else 404 (never another user's data)."""
    try:
        session = await state.keel.sessions.get(session_id)
    except SessionNotFound:
        session = None
    if session is None or (session.user_id != caller.user_id and not caller.admin):
        raise ApiProblem(404, f"no session '{session_id}'")
    return session


SessionDep = Annotated[Session, Depends(owned_session)]
