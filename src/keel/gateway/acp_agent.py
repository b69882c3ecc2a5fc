"""Keel as an editor's agent over the Agent Client Protocol (JSON-RPC over stdio), on the
official `agent-client-protocol` SDK.

An ACP session lives in a directory (`session/new`'s cwd); each `session/prompt` is one Keel
session whose goal is the prompt's text, working on that directory in place (the editor
shows the changes and can undo them), with the policy of its `keel.policy.yaml`. The turn
streams as `session/update` notifications (`acp_updates`), an approval Keel asks for is a
`session/request_permission` to the editor, and when the editor offers `fs/*` the file
tools read and write through it. `session/load` replays an ACP session's turns (or any Keel
session, by its id) and resumes the last one when it was interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from acp import PROTOCOL_VERSION, Client, RequestError, run_agent, update_user_message_text
from acp import Agent as AcpAgent
from acp.schema import (
    AgentCapabilities,
    AllowedOutcome,
    AudioContentBlock,
    ClientCapabilities,
    EmbeddedResourceContentBlock,
    ImageContentBlock,
    Implementation,
    InitializeResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PermissionOption,
    PromptCapabilities,
    PromptResponse,
    ResourceContentBlock,
    StopReason,
    TextContentBlock,
    TextResourceContents,
)

from keel import __version__
from keel.errors import KeelError, NotFound
from keel.events import kinds
from keel.gateway.acp_files import EditorFiles
from keel.gateway.acp_sessions import AcpSessionRecord, AcpSessionStore
from keel.gateway.acp_updates import SessionUpdates
from keel.ids import new_id
from keel.orchestrator import Keel
from keel.orchestrator.session_config import SessionConfig
from keel.tools.editor_fs import use_editor_fs
from keel.types import AgentDefinition, JsonObject, Session, SessionStatus, TraceEvent

ContentBlock = (
    TextContentBlock
    | ImageContentBlock
    | AudioContentBlock
    | ResourceContentBlock
    | EmbeddedResourceContentBlock
)

ALLOW_ONCE, ALLOW_ALWAYS, REJECT = "allow-once", "allow-always", "reject"
PERMISSION_OPTIONS = [
    PermissionOption(option_id=ALLOW_ONCE, name="Allow once", kind="allow_once"),
    PermissionOption(option_id=ALLOW_ALWAYS, name="Allow for this turn", kind="allow_always"),
    PermissionOption(option_id=REJECT, name="Reject", kind="reject_once"),
]
EDITOR = "editor"
logger = logging.getLogger(__name__)


def prompt_text(blocks: list[ContentBlock]) -> str:
    """The goal a prompt states: its text, the resources it links, the text it embeds."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, TextContentBlock):
            parts.append(block.text)
        elif isinstance(block, ResourceContentBlock):
            parts.append(f"({block.name}: {block.uri})")
        elif isinstance(block, EmbeddedResourceContentBlock) and isinstance(
            block.resource, TextResourceContents
        ):
            parts.append(f"{block.resource.uri}:\n{block.resource.text}")
    return "\n".join(part for part in parts if part.strip()).strip()


@dataclass
class _Turn:
    """A Keel session running for an ACP session: a prompt's, or one resumed on load."""

    keel_session_id: str
    prompted: bool
    task: asyncio.Task[StopReason]


@dataclass(frozen=True, slots=True)
class _Replayed:
    """A turn sent to the editor again: where its events stopped, and their translation."""

    session: Session
    updates: SessionUpdates
    after: int


@dataclass
class _Session:
    record: AcpSessionRecord
    turn: _Turn | None = None
    cancel_requested: bool = False
    asking: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def running(self) -> _Turn | None:
        """The turn still running, if one is."""
        turn = self.turn
        return turn if turn is not None and not turn.task.done() else None


class KeelAcpAgent:
    """The agent side of ACP, on one Keel; the SDK's connection calls these methods."""

    def __init__(
        self,
        keel: Keel,
        team: list[AgentDefinition],
        store: AcpSessionStore,
        *,
        scripted_latency_ms: float = 0,
    ) -> None:
        self._keel = keel
        self._team = team
        self._store = store
        self._scripted_latency_ms = scripted_latency_ms
        self._client: Client | None = None
        self._capabilities = ClientCapabilities()
        self._sessions: dict[str, _Session] = {}

    def on_connect(self, conn: Client) -> None:
        self._client = conn

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RequestError.internal_error({"message": "no editor is connected"})
        return self._client

    # -- the protocol ---------------------------------------------------------------------

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: ClientCapabilities | None = None,
        client_info: Implementation | None = None,
        **kwargs: Any,
    ) -> InitializeResponse:
        self._capabilities = client_capabilities or ClientCapabilities()
        return InitializeResponse(
            protocol_version=min(protocol_version, PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=True,
                prompt_capabilities=PromptCapabilities(
                    image=False, audio=False, embedded_context=True
                ),
            ),
            agent_info=Implementation(name="keel", title="Keel", version=__version__),
            auth_methods=[],
        )

    async def new_session(self, cwd: str, **kwargs: Any) -> NewSessionResponse:
        folder = Path(cwd)
        if not folder.is_absolute() or not await asyncio.to_thread(folder.is_dir):
            raise RequestError.invalid_params({"cwd": f"{cwd} is not an absolute directory"})
        record = AcpSessionRecord(id=new_id("acp"), cwd=str(folder))
        await self._store.save(record)
        self._sessions[record.id] = _Session(record)
        return NewSessionResponse(session_id=record.id)

    async def load_session(self, cwd: str, session_id: str, **kwargs: Any) -> LoadSessionResponse:
        record = await self._store.load(session_id)
        if record is None:  # not an ACP session: a Keel session, loaded as one
            session = await self._keel_session(session_id)
            where = SessionConfig.read(session.config).workspace or cwd
            record = AcpSessionRecord(id=session_id, cwd=where, turns=[session_id])
            await self._store.save(record)
        current = self._sessions.get(session_id)
        state = current if current is not None else _Session(record)
        self._sessions[session_id] = state
        last: _Replayed | None = None
        for keel_id in record.turns:
            last = await self._replay(session_id, keel_id, record)
        if last is not None and not last.session.status.is_final and state.running is None:
            self._start(state, last.session, last.updates, last.after, prompted=False)
        return LoadSessionResponse()

    async def prompt(
        self, session_id: str, prompt: list[ContentBlock], **kwargs: Any
    ) -> PromptResponse:
        state = self._sessions.get(session_id)
        if state is None:
            raise RequestError.invalid_params(
                {"sessionId": f"no session '{session_id}': call session/new or session/load"}
            )
        running = state.running
        if running is not None:
            if running.prompted:
                raise RequestError.invalid_request(
                    {"message": "a prompt turn is already running; cancel it first"}
                )
            with contextlib.suppress(Exception):  # a turn resumed on load ends first
                await running.task
        goal = prompt_text(prompt)
        if not goal:
            raise RequestError.invalid_params({"prompt": "the prompt has no text"})
        state.cancel_requested = False
        config: JsonObject = {
            "workspace": state.record.cwd,
            "isolate": False,
            "scriptedLatencyMs": self._scripted_latency_ms,
        }
        try:
            session = await self._keel.create_session(goal, self._team, config=config)
        except KeelError as error:
            raise RequestError.invalid_params({"message": str(error)}) from None
        state.record.turns.append(session.id)
        await self._store.save(state.record)
        updates = SessionUpdates(Path(state.record.cwd))
        turn = self._start(state, session, updates, 0, prompted=True)
        return PromptResponse(stop_reason=await turn.task)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        state = self._sessions.get(session_id)
        if state is None:
            return
        state.cancel_requested = True
        for asking in list(state.asking):
            asking.cancel()
        running = state.running
        if running is not None:
            await self._keel.cancel(
                running.keel_session_id, reason="cancelled in the editor", actor=EDITOR
            )

    async def aclose(self) -> None:
        """Stop the turns still running; their sessions resume from their checkpoints."""
        tasks = [s.turn.task for s in self._sessions.values() if s.turn is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- running a turn -------------------------------------------------------------------

    def _start(
        self,
        state: _Session,
        session: Session,
        updates: SessionUpdates,
        after: int,
        *,
        prompted: bool,
    ) -> _Turn:
        task = asyncio.create_task(self._drive(state, session, updates, after))
        state.turn = _Turn(session.id, prompted, task)
        return state.turn

    async def _replay(self, acp_id: str, keel_id: str, record: AcpSessionRecord) -> _Replayed:
        """Send a past turn to the editor: its prompt, then its events as updates."""
        session = await self._keel_session(keel_id)
        await self._send(acp_id, update_user_message_text(session.goal))
        updates = SessionUpdates(self._workspace(session, record))
        events = await self._keel.events.read(keel_id)
        for event in events:
            for update in updates.updates(event):
                await self._send(acp_id, update)
        return _Replayed(session, updates, events[-1].seq if events else 0)

    async def _drive(
        self, state: _Session, session: Session, updates: SessionUpdates, after: int
    ) -> StopReason:
        """Run (or resume) the Keel session, streaming its events to the editor, until it
        ends; the stop reason says how."""
        acp_id = state.record.id
        files = self._editor_files(acp_id, session)
        with use_editor_fs(files) if files is not None else contextlib.nullcontext():
            runner = asyncio.create_task(self._keel.run(session.id))
        if state.cancel_requested:  # asked before the session existed
            await self._keel.cancel(session.id, reason="cancelled in the editor", actor=EDITOR)

        async def forward() -> None:
            following = self._keel.events.follow(session.id, after, until=kinds.SESSION_FINAL)
            async for event in following:
                for update in updates.updates(event):
                    await self._send(acp_id, update)
                if event.type == kinds.APPROVAL_REQUESTED:
                    asking = asyncio.create_task(self._ask(state, event, updates))
                    state.asking.add(asking)
                    asking.add_done_callback(state.asking.discard)

        follower = asyncio.create_task(forward())
        try:
            await asyncio.wait({runner, follower}, return_when=asyncio.FIRST_EXCEPTION)
            if follower.done():
                await follower  # raises when the editor went away
            try:
                finished = await runner
            except KeelError as error:
                raise RequestError(
                    -32603, f"Keel could not run session {session.id}: {error}"
                ) from None
            await follower
        finally:
            for task in (runner, follower, *state.asking):
                task.cancel()
            await asyncio.gather(runner, follower, *state.asking, return_exceptions=True)
        if state.cancel_requested or finished.status is SessionStatus.CANCELLED:
            return "cancelled"
        if finished.status is SessionStatus.FAILED and updates.token_budget_spent:
            return "max_tokens"
        return "end_turn"

    async def _ask(self, state: _Session, event: TraceEvent, updates: SessionUpdates) -> None:
        """Ask the editor about an approval and answer it with the editor's choice."""
        try:
            response = await self.client.request_permission(
                session_id=state.record.id,
                tool_call=updates.permission_call(event),
                options=PERMISSION_OPTIONS,
            )
        except (RequestError, ConnectionError) as error:
            # Unanswered, the approval stays pending: `keel approve` may still answer it,
            # and its deadline denies it.
            logger.warning("the editor did not answer approval %s: %s", event.payload, error)
            return
        outcome = response.outcome
        if not isinstance(outcome, AllowedOutcome) and state.cancel_requested:
            return  # the turn is being cancelled; the approval goes with it
        choice = outcome.option_id if isinstance(outcome, AllowedOutcome) else REJECT
        with contextlib.suppress(KeelError):  # answered elsewhere meanwhile
            await self._keel.answer(
                str(event.payload["approvalId"]),
                allow=choice in (ALLOW_ONCE, ALLOW_ALWAYS),
                remember=choice == ALLOW_ALWAYS,
                note=f"answered in the editor: {choice}",
                actor=EDITOR,
            )

    # -- pieces ---------------------------------------------------------------------------

    async def _send(self, session_id: str, update: Any) -> None:
        await self.client.session_update(session_id=session_id, update=update)

    async def _keel_session(self, session_id: str) -> Session:
        try:
            return await self._keel.sessions.get(session_id)
        except NotFound:
            raise RequestError.invalid_params(
                {"sessionId": f"no session '{session_id}' in this Keel store"}
            ) from None

    @staticmethod
    def _workspace(session: Session, record: AcpSessionRecord) -> Path:
        return Path(SessionConfig.read(session.config).workspace or record.cwd)

    def _editor_files(self, acp_id: str, session: Session) -> EditorFiles | None:
        """The editor's file system, when it offers one and the session works in place (a
        session in its own worktree works on files the editor does not show)."""
        fs = self._capabilities.fs
        if fs is None or SessionConfig.read(session.config).isolate:
            return None
        reads, writes = bool(fs.read_text_file), bool(fs.write_text_file)
        if not (reads or writes):
            return None
        return EditorFiles(self.client, acp_id, reads=reads, writes=writes)


async def serve_acp(
    keel: Keel, team: list[AgentDefinition], *, scripted_latency_ms: float = 0
) -> None:
    """Be an ACP agent on this process's stdin and stdout until the editor disconnects."""
    agent = KeelAcpAgent(
        keel, team, AcpSessionStore(keel.settings.home), scripted_latency_ms=scripted_latency_ms
    )
    try:
        # The SDK's `Agent` protocol lists every method of the protocol; the router answers
        # "method not found" for the ones this agent leaves out (list, fork, modes ...).
        await run_agent(cast(AcpAgent, agent))
    finally:
        await agent.aclose()
