"""`AsyncKeelClient`: the session API from asyncio code, on one `httpx.AsyncClient`.

    async with AsyncKeelClient() as keel:         # KEEL_URL and KEEL_TOKEN
        session = await keel.create_session("Fix the failing test")
        async for event in keel.stream_events(session.id):
            print(event.seq, event.type)
        print((await keel.wait(session.id)).final_answer)

Leaving `stream_events` early: wrap it in `contextlib.aclosing` so its connection closes
at once, not when the generator is collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
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


class AsyncKeelClient:
    """A Keel server's session API, for asyncio. `url` and `token` default to `KEEL_URL` and
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
        self._http = httpx.AsyncClient(
            base_url=self.config.url, headers=self.config.headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncKeelClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: api.Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as error:
            raise unreachable(self.config.url, error) from None
        return call.answer(response, has_token=self.config.token is not None)

    # -- health -----------------------------------------------------------------------

    async def health(self) -> Health:
        return await self._send(api.health())

    async def ready(self) -> bool:
        """Whether the server answers and is ready to serve (False while it starts)."""
        try:
            await self._send(api.ready())
        except ServerUnavailable:
            return False
        return True

    # -- sessions ---------------------------------------------------------------------

    async def create_session(
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
        return await self._send(api.create_session(goal, agents, workflow, config, budget))

    async def list_sessions(
        self, *, limit: int = 50, status: SessionStatus | str | None = None
    ) -> list[Session]:
        return await self._send(api.list_sessions(limit, status))

    async def get_session(self, session_id: str) -> Session:
        return await self._send(api.get_session(session_id))

    async def delete_session(self, session_id: str) -> None:
        await self._send(api.delete_session(session_id))

    async def send_message(self, session_id: str, text: str) -> MessageSent:
        return await self._send(api.send_message(session_id, text))

    async def tasks(self, session_id: str) -> list[TaskTreeNode]:
        """The session's task tree: its root tasks, each with its children."""
        return await self._send(api.tasks(session_id))

    async def events(self, session_id: str, *, after: int = 0, limit: int = 500) -> EventPage:
        """One page of the session's events after `after`, and its last sequence number."""
        return await self._send(api.events(session_id, after, limit))

    async def stream_events(self, session_id: str, *, after: int = 0) -> AsyncIterator[TraceEvent]:
        """The session's events after `after` as they are written, until its final event.
        A dropped connection is resumed from the last event seen (`Last-Event-ID`): no
        event is missed or repeated."""
        cursor = EventCursor(self.config, session_id, after)
        while True:
            reason: str | httpx.TransportError
            try:
                async with self._http.stream(
                    "GET", cursor.path, headers=cursor.headers(), timeout=cursor.timeout
                ) as response:
                    if response.is_error:
                        await response.aread()
                    refused = cursor.opened(response)
                    if refused is None:
                        async for line in response.aiter_lines():
                            event = cursor.feed(line)
                            if event is not None:
                                yield event
                            if cursor.finished:
                                return
                    reason = refused or CLOSED_EARLY
            except httpx.TransportError as error:
                reason = error
            await asyncio.sleep(cursor.dropped(reason))

    async def wait(self, session_id: str) -> Session:
        """The session once it has ended (done, failed or cancelled)."""
        last_seq = (await self.events(session_id, limit=1)).last_seq
        session = await self.get_session(session_id)
        if session.status.is_final:
            return session
        async for _ in self.stream_events(session_id, after=last_seq):
            pass
        return await self.get_session(session_id)

    async def cancel(
        self, session_id: str, *, task_id: str | None = None, reason: str | None = None
    ) -> Accepted:
        """Ask to cancel the session (or one task and what depends on it)."""
        return await self._send(api.cancel(session_id, task_id, reason))

    async def resume(self, session_id: str) -> Accepted:
        """Queue an interrupted session again; a worker resumes it from its checkpoint."""
        return await self._send(api.resume(session_id))

    # -- approvals --------------------------------------------------------------------

    async def approvals(
        self, session_id: str | None = None, *, every: bool = False
    ) -> list[Approval]:
        """Approvals waiting for an answer (`every`: answered ones too)."""
        return await self._send(api.approvals(session_id, every))

    async def get_approval(self, approval_id: str) -> Approval:
        return await self._send(api.get_approval(approval_id))

    async def answer_approval(
        self, approval_id: str, *, allow: bool, remember: bool = False, note: str | None = None
    ) -> Approval:
        return await self._send(api.answer_approval(approval_id, allow, remember, note))

    # -- registry and policy ----------------------------------------------------------

    async def agents(self) -> list[AgentDefinition]:
        """Every registered agent at its latest version."""
        return await self._send(api.agents())

    async def get_agent(self, name: str, *, version: int | None = None) -> AgentDefinition:
        return await self._send(api.get_agent(name, version))

    async def register_agents(
        self, definitions: Sequence[AgentDefinition]
    ) -> list[AgentDefinition]:
        """Register definitions, all or nothing (admin tokens only)."""
        return await self._send(api.register_agents(definitions))

    async def get_policy(self) -> str:
        """The policy file every API session runs under ("" for the default policy)."""
        return await self._send(api.get_policy())

    async def put_policy(self, text: str) -> str:
        """Replace the server's policy file (admin tokens only)."""
        return await self._send(api.put_policy(text))

    # -- blackboard -------------------------------------------------------------------

    async def facts(self, session_id: str) -> list[Fact]:
        return await self._send(api.facts(session_id))

    async def artifacts(self, session_id: str) -> list[Artifact]:
        return await self._send(api.artifacts(session_id))

    async def download_artifact(self, session_id: str, artifact_id: str) -> bytes:
        """The artifact's content, checked against its checksum."""
        return await self._send(api.download_artifact(session_id, artifact_id))
