"""`KeelClient`: the session API from synchronous code, on one `httpx.Client`.

with KeelClient() as keel:                    # KEEL_URL and KEEL_TOKEN
    session = keel.create_session("Fix the failing test")
    for event in keel.stream_events(session.id):
        print(event.seq, event.type)
    print(keel.wait(session.id).final_answer)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from keel.blackboard.facts import Fact
from keel.client import _endpoints as api
from keel.client._config import TIMEOUT_S, ClientConfig, Reconnect
from keel.client._stream import CLOSED_EARLY, EventCursor
from keel.client.errors import ServerUnavailable, unreachable
from keel.guardrails.approvals import Approval
from keel.server.schemas import Accepted, EventPage, Health, MessageSent, TaskTreeNode
from keel.types import (
    AgentDefinition,
    Artifact,
    Budget,
    JsonObject,
    Session,
    SessionStatus,
    TraceEvent,
)

T = TypeVar("T")


class KeelClient:
    """A Keel server's session API. `url` and `token` default to `KEEL_URL` and
    `KEEL_TOKEN`; every failure is a `KeelError` (see `keel.client.errors`)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = TIMEOUT_S,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(url, token, timeout_s=timeout, reconnect=reconnect)
        self._http = httpx.Client(
            base_url=self.config.url, headers=self.config.headers, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KeelClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: api.Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as error:
            raise unreachable(self.config.url, error) from None
        return call.answer(response, has_token=self.config.token is not None)

    # -- health -----------------------------------------------------------------------

    def health(self) -> Health:
        return self._send(api.health())

    def ready(self) -> bool:
        """Whether the server answers and is ready to serve (False while it starts)."""
        try:
            self._send(api.ready())
        except ServerUnavailable:
            return False
        return True

    # -- sessions ---------------------------------------------------------------------

    def create_session(
        self,
        goal: str | None = None,
        *,
        agents: Sequence[str | AgentDefinition] | None = None,
        workflow: JsonObject | None = None,
        config: JsonObject | None = None,
        budget: Budget | JsonObject | None = None,
    ) -> Session:
        """A team session (a goal) or a workflow session; queued for the server's workers.
        `agents`: registered names, or full definitions (admin tokens only); default:
        every registered agent."""
        return self._send(api.create_session(goal, agents, workflow, config, budget))

    def list_sessions(
        self, *, limit: int = 50, status: SessionStatus | str | None = None
    ) -> list[Session]:
        return self._send(api.list_sessions(limit, status))

    def get_session(self, session_id: str) -> Session:
        return self._send(api.get_session(session_id))

    def delete_session(self, session_id: str) -> None:
        self._send(api.delete_session(session_id))

    def send_message(self, session_id: str, text: str) -> MessageSent:
        return self._send(api.send_message(session_id, text))

    def tasks(self, session_id: str) -> list[TaskTreeNode]:
        """The session's task tree: its root tasks, each with its children."""
        return self._send(api.tasks(session_id))

    def events(self, session_id: str, *, after: int = 0, limit: int = 500) -> EventPage:
        """One page of the session's events after `after`, and its last sequence number."""
        return self._send(api.events(session_id, after, limit))

    def stream_events(self, session_id: str, *, after: int = 0) -> Iterator[TraceEvent]:
        """The session's events after `after` as they are written, until its final event.
        A dropped connection is resumed from the last event seen (`Last-Event-ID`): no
        event is missed or repeated."""
        cursor = EventCursor(self.config, session_id, after)
        while True:
            reason: str | httpx.TransportError
            try:
                with self._http.stream(
                    "GET", cursor.path, headers=cursor.headers(), timeout=cursor.timeout
                ) as response:
                    if response.is_error:
                        response.read()
                    refused = cursor.opened(response)
                    if refused is None:
                        for line in response.iter_lines():
                            event = cursor.feed(line)
                            if event is not None:
                                yield event
                            if cursor.finished:
                                return
                    reason = refused or CLOSED_EARLY
            except httpx.TransportError as error:
                reason = error
            time.sleep(cursor.dropped(reason))

    def wait(self, session_id: str) -> Session:
        """The session once it has ended (done, failed or cancelled)."""
        last_seq = self.events(session_id, limit=1).last_seq
        session = self.get_session(session_id)
        if session.status.is_final:
            return session
        for _ in self.stream_events(session_id, after=last_seq):
            pass
        return self.get_session(session_id)

    def cancel(
        self, session_id: str, *, task_id: str | None = None, reason: str | None = None
    ) -> Accepted:
        """Ask to cancel the session (or one task and what depends on it)."""
        return self._send(api.cancel(session_id, task_id, reason))

    def resume(self, session_id: str) -> Accepted:
        """Queue an interrupted session again; a worker resumes it from its checkpoint."""
        return self._send(api.resume(session_id))

    # -- approvals --------------------------------------------------------------------

    def approvals(self, session_id: str | None = None, *, every: bool = False) -> list[Approval]:
        """Approvals waiting for an answer (`every`: answered ones too)."""
        return self._send(api.approvals(session_id, every))

    def get_approval(self, approval_id: str) -> Approval:
        return self._send(api.get_approval(approval_id))

    def answer_approval(
        self, approval_id: str, *, allow: bool, remember: bool = False, note: str | None = None
    ) -> Approval:
        return self._send(api.answer_approval(approval_id, allow, remember, note))

    # -- registry and policy ----------------------------------------------------------

    def agents(self) -> list[AgentDefinition]:
        """Every registered agent at its latest version."""
        return self._send(api.agents())

    def get_agent(self, name: str, *, version: int | None = None) -> AgentDefinition:
        return self._send(api.get_agent(name, version))

    def register_agents(self, definitions: Sequence[AgentDefinition]) -> list[AgentDefinition]:
        """Register definitions, all or nothing (admin tokens only)."""
        return self._send(api.register_agents(definitions))

    def get_policy(self) -> str:
        """The policy file every API session runs under ("" for the default policy)."""
        return self._send(api.get_policy())

    def put_policy(self, text: str) -> str:
        """Replace the server's policy file (admin tokens only)."""
        return self._send(api.put_policy(text))

    # -- blackboard -------------------------------------------------------------------

    def facts(self, session_id: str) -> list[Fact]:
        return self._send(api.facts(session_id))

    def artifacts(self, session_id: str) -> list[Artifact]:
        return self._send(api.artifacts(session_id))

    def download_artifact(self, session_id: str, artifact_id: str) -> bytes:
        """The artifact's content, checked against its checksum."""
        return self._send(api.download_artifact(session_id, artifact_id))
