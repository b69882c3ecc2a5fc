"""Each endpoint of the session API as data: the request to send, how its answer is read
into Keel's own models, and which error each refusal stands for.

The sync and the async client both send these `Call`s, so the two cannot drift apart; this
module does no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from keel.blackboard.artifacts import CHECKSUM_PREFIX
from keel.blackboard.facts import Fact
from keel.client.errors import SESSION_ERRORS, ApiError, ErrorFactory, error_for
from keel.errors import KeelError, NotFound, SessionNotResumable, UnknownAgent
from keel.guardrails.approvals import Approval, ApprovalNotFound
from keel.server.schemas import (
    Accepted,
    AgentList,
    ApprovalList,
    ArtifactList,
    EventPage,
    FactList,
    Health,
    MessageSent,
    PolicyDocument,
    SessionList,
    TaskTree,
    TaskTreeNode,
)
from keel.types import AgentDefinition, Artifact, Budget, JsonObject, Session, SessionStatus

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Parse = Callable[[httpx.Response], T]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Parse[T]
    params: Mapping[str, Any] | None = None
    body: Any = None
    errors: Mapping[int, ErrorFactory] = field(default_factory=dict)

    def answer(self, response: httpx.Response, *, has_token: bool) -> T:
        """The parsed answer, or the error the server's refusal stands for."""
        if response.is_error:
            raise error_for(response, self.errors, has_token=has_token)
        return self.parse(response)


def read_model(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate(response.json())
    except (ValidationError, ValueError) as error:
        request = response.request
        raise ApiError(
            response.status_code,
            f"the answer to {request.method} {request.url.path} is not a {model.__name__} "
            f"as this client knows it (are client and server the same Keel version?): "
            f"{str(error).splitlines()[0]}",
        ) from None


def _model(model: type[M]) -> Parse[M]:
    return lambda response: read_model(model, response)


def _pick(model: type[M], pick: Callable[[M], T]) -> Parse[T]:
    return lambda response: pick(read_model(model, response))


def _nothing(response: httpx.Response) -> None:
    return None


def _segment(value: str) -> str:
    return quote(value, safe="")


def session_path(session_id: str, rest: str = "") -> str:
    return f"/v1/sessions/{_segment(session_id)}{rest}"


def _given(**values: Any) -> JsonObject:
    return {name: value for name, value in values.items() if value is not None}


# -- health ---------------------------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", "/healthz", _model(Health))


def ready() -> Call[Health]:
    return Call("GET", "/readyz", _model(Health))


# -- sessions -------------------------------------------------------------------------


def create_session(
    goal: str | None,
    agents: Sequence[str | AgentDefinition] | None,
    workflow: JsonObject | None,
    config: JsonObject | None,
    budget: Budget | JsonObject | None,
) -> Call[Session]:
    body = _given(
        goal=goal,
        agents=None
        if agents is None
        else [a.to_json() if isinstance(a, AgentDefinition) else a for a in agents],
        workflow=workflow,
        config=config,
        budget=budget.to_json() if isinstance(budget, Budget) else budget,
    )
    return Call("POST", "/v1/sessions", _model(Session), body=body)


def list_sessions(limit: int, status: SessionStatus | str | None) -> Call[list[Session]]:
    params = _given(limit=limit, status=None if status is None else str(status))
    return Call("GET", "/v1/sessions", _pick(SessionList, lambda page: page.sessions), params)


def get_session(session_id: str) -> Call[Session]:
    return Call("GET", session_path(session_id), _model(Session), errors=SESSION_ERRORS)


def delete_session(session_id: str) -> Call[None]:
    return Call("DELETE", session_path(session_id), _nothing, errors=SESSION_ERRORS)


def send_message(session_id: str, text: str) -> Call[MessageSent]:
    path = session_path(session_id, "/messages")
    return Call(
        "POST",
        path,
        _model(MessageSent),
        body={"text": text},
        errors={**SESSION_ERRORS, 409: SessionNotResumable},
    )


def tasks(session_id: str) -> Call[list[TaskTreeNode]]:
    parse = _pick(TaskTree, lambda tree: tree.tasks)
    return Call("GET", session_path(session_id, "/tasks"), parse, errors=SESSION_ERRORS)


def events(session_id: str, after: int, limit: int) -> Call[EventPage]:
    params = {"after": after, "limit": limit}
    path = session_path(session_id, "/events")
    return Call("GET", path, _model(EventPage), params, errors=SESSION_ERRORS)


def cancel(session_id: str, task_id: str | None, reason: str | None) -> Call[Accepted]:
    body = _given(taskId=task_id, reason=reason)
    # with a task, a 404 may be the task's: the generic NotFound says which in its message
    errors: Mapping[int, ErrorFactory] = SESSION_ERRORS if task_id is None else {404: NotFound}
    return Call(
        "POST", session_path(session_id, "/cancel"), _model(Accepted), body=body, errors=errors
    )


def resume(session_id: str) -> Call[Accepted]:
    errors = {**SESSION_ERRORS, 409: SessionNotResumable}
    return Call("POST", session_path(session_id, "/resume"), _model(Accepted), errors=errors)


# -- approvals ------------------------------------------------------------------------


def approvals(session_id: str | None, every: bool) -> Call[list[Approval]]:
    params = _given(session=session_id, all="true" if every else None)
    parse = _pick(ApprovalList, lambda found: found.approvals)
    errors = SESSION_ERRORS if session_id is not None else {}
    return Call("GET", "/v1/approvals", parse, params, errors=errors)


def get_approval(approval_id: str) -> Call[Approval]:
    path = f"/v1/approvals/{_segment(approval_id)}"
    return Call("GET", path, _model(Approval), errors={404: ApprovalNotFound})


def answer_approval(
    approval_id: str, allow: bool, remember: bool, note: str | None
) -> Call[Approval]:
    body = _given(allow=allow, remember=remember, note=note)
    path = f"/v1/approvals/{_segment(approval_id)}"
    return Call("POST", path, _model(Approval), body=body, errors={404: ApprovalNotFound})


# -- registry and policy --------------------------------------------------------------


def agents() -> Call[list[AgentDefinition]]:
    return Call("GET", "/v1/agents", _pick(AgentList, lambda found: found.agents))


def get_agent(name: str, version: int | None) -> Call[AgentDefinition]:
    path = f"/v1/agents/{_segment(name)}"
    # the server answers an unknown name with 422 (UnknownAgent), as for a session's agents
    errors = {404: UnknownAgent, 422: UnknownAgent}
    return Call("GET", path, _model(AgentDefinition), _given(version=version), errors=errors)


def register_agents(definitions: Sequence[AgentDefinition]) -> Call[list[AgentDefinition]]:
    body = {"agents": [definition.to_json() for definition in definitions]}
    return Call("PUT", "/v1/agents", _pick(AgentList, lambda found: found.agents), body=body)


def get_policy() -> Call[str]:
    return Call("GET", "/v1/policy", _pick(PolicyDocument, lambda policy: policy.yaml))


def put_policy(text: str) -> Call[str]:
    parse = _pick(PolicyDocument, lambda policy: policy.yaml)
    return Call("PUT", "/v1/policy", parse, body={"yaml": text})


# -- blackboard -----------------------------------------------------------------------


def facts(session_id: str) -> Call[list[Fact]]:
    parse = _pick(FactList, lambda found: found.facts)
    return Call("GET", session_path(session_id, "/facts"), parse, errors=SESSION_ERRORS)


def artifacts(session_id: str) -> Call[list[Artifact]]:
    parse = _pick(ArtifactList, lambda found: found.artifacts)
    return Call("GET", session_path(session_id, "/artifacts"), parse, errors=SESSION_ERRORS)


def _checked_content(response: httpx.Response) -> bytes:
    """The artifact's bytes, checked against the checksum the server sent with them."""
    expected = response.headers.get("X-Checksum-Sha256", "").removeprefix(CHECKSUM_PREFIX)
    actual = hashlib.sha256(response.content).hexdigest()
    if expected and expected != actual:
        raise KeelError(
            f"the artifact from {response.request.url.path} arrived damaged (sha256 "
            f"{actual[:12]}..., expected {expected[:12]}...): download it again"
        )
    return response.content


def download_artifact(session_id: str, artifact_id: str) -> Call[bytes]:
    path = session_path(session_id, f"/artifacts/{_segment(artifact_id)}")
    return Call("GET", path, _checked_content)
