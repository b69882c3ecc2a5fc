"""Keel as an MCP server, on the official `mcp` SDK: tools to start a session, follow it,
answer its approvals and cancel it; resources for sessions, task trees and artifacts.

`build_mcp_server` makes a transport-free server: `keel mcp` runs it over stdio, the HTTP
server mounts its Streamable HTTP app. Sessions run where `start_run` puts them: by default
in this process, in the background (the tools return at once; `wait_for_session` follows a
run to its end and reports progress notifications as tasks finish). Everything is scoped to
one user: sessions of other users do not exist for this server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from keel.errors import KeelError, NotFound
from keel.events import kinds
from keel.gateway.agents import choose_agents, default_team
from keel.gateway.runs import BackgroundRuns
from keel.gateway.views import (
    ApprovalView,
    EventPage,
    EventView,
    SessionList,
    SessionView,
    TaskTree,
    TaskView,
)
from keel.orchestrator import Keel
from keel.types import AgentDefinition, JsonObject, Session, TaskStatus, TraceEvent

StartRun = Callable[[str], Awaitable[None]]
"""Starts running a session (by id) somewhere and returns at once."""

INSTRUCTIONS = (
    "Keel is a durable multi-agent runtime. start_session gives a team of agents a goal and "
    "returns at once; wait_for_session follows the run to its end with progress "
    "notifications; get_session shows the status, the final answer and approvals waiting "
    "for an answer (answer_approval); cancel_session stops a run."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
MAX_WAIT_S = 3600
RESOURCE_SESSIONS = 50

SessionId = Annotated[str, Field(description="The session's id, as start_session returned it.")]


@contextmanager
def _tool_errors() -> Iterator[None]:
    """A Keel error is the tool's error result, with Keel's message; never a traceback."""
    try:
        yield
    except KeelError as error:
        raise ToolError(str(error)) from None


@contextmanager
def _resource_errors() -> Iterator[None]:
    try:
        yield
    except NotFound as error:
        raise ResourceNotFoundError(str(error)) from None
    except KeelError as error:
        raise ResourceError(str(error)) from None


class _Progress:
    """Counts tasks as a session's events tell them: how many exist, how many ended."""

    def __init__(self) -> None:
        self.goals: dict[str, str] = {}
        self.ended: set[str] = set()

    def add(self, event: TraceEvent) -> str | None:
        """A progress message when `event` ends a task, else None."""
        task_id = event.task_id
        if task_id is None:
            return None
        if event.type == kinds.TASK_CREATED:
            self.goals[task_id] = str(event.payload.get("goal", ""))
        elif event.type == kinds.TASK_STATUS and task_id not in self.ended:
            status = str(event.payload.get("to"))
            if TaskStatus(status).is_final:
                self.ended.add(task_id)
                return f"{status}: {self.goals.get(task_id, task_id)}"
        return None


class KeelMcp:
    """The tools and resources of one Keel, for one user."""

    def __init__(
        self,
        keel: Keel,
        team: Sequence[AgentDefinition],
        start_run: StartRun,
        *,
        user_id: str | Callable[[], str],
        workspace: Path | None,
        runs: BackgroundRuns | None,
        configure: Callable[[JsonObject], JsonObject] | None = None,
    ) -> None:
        self._keel = keel
        self._team = list(team)
        self._start_run = start_run
        self._user: Callable[[], str]
        if callable(user_id):
            self._user = user_id
        else:
            fixed = user_id
            self._user = lambda: fixed
        self._workspace = workspace
        self._runs = runs
        self._configure = configure

    async def _session(self, session_id: str) -> Session:
        session = await self._keel.sessions.get(session_id)
        if session.user_id != self._user():
            raise NotFound(f"no session '{session_id}'")
        return session

    async def _view(self, session: Session) -> SessionView:
        approvals = await self._keel.approvals.list(session.id)
        artifacts = await self._keel.artifacts.list(session_id=session.id)
        run_error = self._runs.error(session.id) if self._runs is not None else None
        return SessionView.of(session, approvals, artifacts, run_error)

    async def _tree(self, session_id: str) -> TaskTree:
        session = await self._session(session_id)
        roots = await self._keel.tasks.tree(session_id)
        return TaskTree(
            session_id=session.id,
            status=session.status.value,
            tasks=[TaskView.of(node) for node in roots],
        )

    # -- tools ---------------------------------------------------------------------------

    async def start_session(
        self,
        goal: Annotated[str, Field(description="What the agents should do.")],
        agents: Annotated[
            list[str] | None,
            Field(description="Names of the agents to use (default: the server's team)."),
        ] = None,
        workspace: Annotated[
            str | None,
            Field(description="Directory the agents work in (default: the server's)."),
        ] = None,
    ) -> SessionView:
        """Start a session: the agents plan the goal into tasks and carry them out. Returns
        at once with the session's id; the run goes on in the background."""
        with _tool_errors():
            team = await choose_agents(self._keel, self._team, agents)
            config: JsonObject = {}
            where = workspace or self._workspace
            if where is not None:
                config["workspace"] = str(where)
            if self._configure is not None:
                config = self._configure(config)
            session = await self._keel.create_session(
                goal, team, user_id=self._user(), config=config
            )
            await self._start_run(session.id)
            return SessionView.of(session)

    async def get_session(self, session_id: SessionId) -> SessionView:
        """A session's status, its final answer once it has one, the approvals waiting for
        an answer, and its artifacts."""
        with _tool_errors():
            return await self._view(await self._session(session_id))

    async def get_task_tree(self, session_id: SessionId) -> TaskTree:
        """A session's task tree: each task's goal, agent, status and output."""
        with _tool_errors():
            return await self._tree(session_id)

    async def get_events(
        self,
        session_id: SessionId,
        after: Annotated[int, Field(ge=0, description="Only events after this seq.")] = 0,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> EventPage:
        """A session's events in order: messages, tool calls, task changes, approvals."""
        with _tool_errors():
            await self._session(session_id)
            events = await self._keel.events.read(session_id, after, limit)
            return EventPage(
                session_id=session_id,
                events=[EventView.of(event) for event in events],
                next_after=events[-1].seq if events else after,
            )

    async def answer_approval(
        self,
        approval_id: Annotated[str, Field(description="From get_session's pendingApprovals.")],
        allow: Annotated[bool, Field(description="true lets the call run; false refuses it.")],
        remember: Annotated[
            bool, Field(description="Allow the same call again in this session without asking.")
        ] = False,
        note: Annotated[str | None, Field(description="Why; recorded in the events.")] = None,
    ) -> ApprovalView:
        """Answer an approval a session is waiting for; its task continues (or is told no)."""
        with _tool_errors():
            approval = await self._keel.approvals.get(approval_id)
            await self._session(approval.session_id)
            answered = await self._keel.answer(
                approval_id, allow=allow, remember=remember, note=note, actor=self._user()
            )
            return ApprovalView.of(answered)

    async def cancel_session(
        self,
        session_id: SessionId,
        reason: Annotated[str, Field(description="Why; recorded in the events.")] = (
            "cancelled through MCP"
        ),
    ) -> SessionView:
        """Cancel a session: running model calls and commands stop; it ends as cancelled."""
        with _tool_errors():
            session = await self._session(session_id)
            if not session.status.is_final:
                await self._keel.cancel(session_id, reason=reason, actor=self._user())
            return await self._view(await self._session(session_id))

    async def wait_for_session(
        self,
        session_id: SessionId,
        ctx: Context[Any, Any],
        timeout_s: Annotated[
            float, Field(gt=0, le=MAX_WAIT_S, description="Give up waiting after this long.")
        ] = 300,
    ) -> SessionView:
        """Follow a session until it ends (or the timeout passes), reporting progress as its
        tasks finish; returns its status and final answer."""
        with _tool_errors():
            session = await self._session(session_id)
            progress = _Progress()

            async def report(event: TraceEvent) -> None:
                message = progress.add(event)
                if message is not None:
                    await ctx.report_progress(len(progress.ended), len(progress.goals), message)

            with anyio.move_on_after(timeout_s):
                if session.status.is_final:
                    for event in await self._keel.events.read(session_id):
                        await report(event)
                else:
                    async for event in self._keel.events.follow(
                        session_id, until=kinds.SESSION_FINAL
                    ):
                        await report(event)
                if self._runs is not None:
                    await self._runs.finished(session_id)
            return await self._view(await self._session(session_id))

    # -- resources -----------------------------------------------------------------------

    async def sessions_resource(self) -> str:
        """The newest sessions."""
        found = await self._keel.sessions.list(RESOURCE_SESSIONS, user_id=self._user())
        return SessionList(sessions=[SessionView.of(s) for s in found]).model_dump_json()

    async def session_resource(self, session_id: str) -> str:
        """A session's status and final answer."""
        with _resource_errors():
            return (await self._view(await self._session(session_id))).model_dump_json()

    async def tasks_resource(self, session_id: str) -> str:
        """A session's task tree."""
        with _resource_errors():
            return (await self._tree(session_id)).model_dump_json()

    async def artifact_resource(self, session_id: str, artifact_id: str) -> str | bytes:
        """An artifact's content: text when it is UTF-8, else bytes."""
        with _resource_errors():
            await self._session(session_id)
            stored = {a.id for a in await self._keel.artifacts.list(session_id=session_id)}
            if artifact_id not in stored:
                raise NotFound(f"session {session_id} has no artifact '{artifact_id}'")
            _, content = await self._keel.artifacts.get(artifact_id)
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            return content


def build_mcp_server(
    keel: Keel,
    *,
    start_run: StartRun | None = None,
    user_id: str | Callable[[], str] = "local",
    team: Sequence[AgentDefinition] | None = None,
    workspace: Path | None = None,
    configure: Callable[[JsonObject], JsonObject] | None = None,
) -> MCPServer[None]:
    """Keel's MCP server on `keel`, for `user_id` (or for whom `user_id()` names at each
    call: the HTTP mount gives the user of the request's token).

    `start_run` starts a session's run and returns at once; by default sessions run in this
    process as background tasks, cancelled when the server's lifespan ends (stdio: when
    the client disconnects; they resume from their checkpoints later). A server whose
    transport enters the lifespan per connection (Streamable HTTP) should pass its own.
    `team` is what a session gets when the caller names no agents (default: the built-in
    scripted team); `workspace` the directory a session works in when it names none;
    `configure` applies a server's rules to a new session's config (it raises a KeelError
    to refuse it)."""
    runs: BackgroundRuns | None = None
    if start_run is None:
        runs = BackgroundRuns(keel)
        start_run = runs.start

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            if runs is not None:
                await runs.aclose()

    tools = KeelMcp(
        keel,
        default_team() if team is None else team,
        start_run,
        user_id=user_id,
        workspace=workspace,
        runs=runs,
        configure=configure,
    )
    server: MCPServer[None] = MCPServer(
        "keel", instructions=INSTRUCTIONS, log_level="WARNING", lifespan=lifespan
    )
    server.add_tool(tools.start_session)
    server.add_tool(tools.get_session, annotations=READ_ONLY)
    server.add_tool(tools.get_task_tree, annotations=READ_ONLY)
    server.add_tool(tools.get_events, annotations=READ_ONLY)
    server.add_tool(tools.answer_approval)
    server.add_tool(tools.cancel_session, annotations=ToolAnnotations(destructive_hint=True))
    server.add_tool(tools.wait_for_session, annotations=READ_ONLY)
    json_type = "application/json"
    server.resource("keel://sessions", name="sessions", mime_type=json_type)(
        tools.sessions_resource
    )
    server.resource("keel://sessions/{session_id}", name="session", mime_type=json_type)(
        tools.session_resource
    )
    server.resource("keel://sessions/{session_id}/tasks", name="tasks", mime_type=json_type)(
        tools.tasks_resource
    )
    server.resource("keel://sessions/{session_id}/artifacts/{artifact_id}", name="artifact")(
        tools.artifact_resource
    )
    return server
