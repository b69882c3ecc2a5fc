"""`Keel`: the embedded runtime. It opens the store, wires the registries, the event log and
the run loop, and runs sessions to their end in this process.

    async with await Keel.open() as keel:
        session = await keel.create_session("Add a CLI flag", agents)
        session = await keel.run(session.id)
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from keel.blackboard import Actor, DecisionLog, FactStore, FileArtifactStore
from keel.config import Settings
from keel.errors import ConfigError, IllegalTransition, SessionNotResumable
from keel.events import EventLog, NewEvent, kinds
from keel.guardrails.approvals import Approval, Approvals
from keel.ids import new_id
from keel.observability import KeelMetrics, observe_session, tracer_provider_from_env
from keel.orchestrator import cancel, run_queue
from keel.orchestrator.context import Blackboard
from keel.orchestrator.functions import FunctionFlow, FunctionState
from keel.orchestrator.loop import Fence, RunLoop
from keel.orchestrator.session_config import SessionConfig
from keel.orchestrator.team import TeamFlow
from keel.orchestrator.workflow import WorkflowFlow
from keel.orchestrator.workflow_checks import check_workflow
from keel.orchestrator.workflow_spec import WorkflowSpec, parse_workflow, read_workflow
from keel.registry import AgentRegistry, SessionRegistry, TaskRegistry
from keel.store import Engine, Tx, open_engine
from keel.tools import Tool, builtin_tools
from keel.types import (
    AgentDefinition,
    ArtifactType,
    Budget,
    JsonObject,
    MemoryScope,
    Session,
    SessionStatus,
    parse_model,
)
from keel.workspace.model import Workspace
from keel.workspace.snapshots import final_patch
from keel.workspace.worktrees import WorkspaceManager

TEAM = "team"
FUNCTIONS = "functions"
WORKFLOW = "workflow"


@asynccontextmanager
async def mcp_tools(agent: AgentDefinition) -> AsyncIterator[dict[str, Tool]]:
    """The tools of the agent's MCP servers, connected while the context is open."""
    try:
        from keel.tools.mcp import McpToolset
    except ImportError as error:
        raise ConfigError(
            f"agent '{agent.name}' lists MCP servers, which need the MCP SDK ({error.name}): "
            "pip install 'keel[mcp]'"
        ) from None
    async with McpToolset(agent.mcp_servers) as toolset:
        yield {tool.name: tool for tool in toolset.tools}


class Keel:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.run_id = new_id("r")
        self.events = EventLog(engine)
        self.agents = AgentRegistry(engine)
        self.sessions = SessionRegistry(engine)
        self.tasks = TaskRegistry(engine)
        self.approvals = Approvals(engine, self.events, self.run_id)
        self.workspaces = WorkspaceManager(settings.home)
        self._opening = asyncio.Lock()
        self._pruned = False
        self.facts = FactStore(engine, events=self.events)
        self.decisions = DecisionLog(self.facts)
        self.artifacts = FileArtifactStore(engine, settings.home / "artifacts", events=self.events)
        self._loop = RunLoop(engine, self.events, self.run_id)
        self.metrics: KeelMetrics | None = None  # set one to count what this process runs
        self.tracer_provider = tracer_provider_from_env()  # None: tracing is off
        self.queue_listeners: list[Callable[[], None]] = []
        """Called when this process queues a session (its embedded workers wake at once)."""

    @classmethod
    async def open(cls, home: Path | str | None = None, *, database_url: str | None = None) -> Keel:
        """Open the store under `home` (default: `KEEL_HOME`, else `./.keel`), or at
        `database_url` (default: `KEEL_DATABASE_URL`, else a SQLite file in the home)."""
        settings = Settings.from_env(home, database_url=database_url)
        return cls(settings, await open_engine(settings.database_url))

    async def close(self) -> None:
        await self.engine.close()

    async def __aenter__(self) -> Keel:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def _create(
        self,
        goal: str,
        *,
        agent_versions: dict[str, int],
        user_id: str,
        config: JsonObject,
        budget: Budget | None,
    ) -> Session:
        session = await self.engine.write(
            lambda tx: SessionRegistry.create_in(
                tx,
                self.run_id,
                goal=goal,
                user_id=user_id,
                agent_versions=agent_versions,
                config=config,
                budget=budget,
            )
        )
        self.events.notify(session.id)
        return session

    async def create_session(
        self,
        goal: str,
        agents: Iterable[AgentDefinition | dict[str, Any]],
        *,
        user_id: str = "local",
        config: JsonObject | None = None,
        budget: Budget | dict[str, Any] | None = None,
    ) -> Session:
        """Register `agents` (new versions where they changed) and create a session that
        runs with exactly those versions. The session does not run until `run`."""
        if not goal.strip():
            raise ConfigError("a session needs a goal: say what the agents should do")
        config = {**(config or {}), "flow": TEAM}
        return await self._create_with_agents(goal, agents, user_id, config, budget)

    async def create_workflow_session(
        self,
        workflow: Path | str | JsonObject | WorkflowSpec,
        agents: Iterable[AgentDefinition | dict[str, Any]],
        *,
        user_id: str = "local",
        config: JsonObject | None = None,
        budget: Budget | dict[str, Any] | None = None,
    ) -> Session:
        """Check a workflow (a file, a mapping or a spec) against `agents`, register them,
        and create a session that runs it. The session's config keeps the workflow, so a
        resume needs no file. The session does not run until `run`."""
        spec, subject = read_workflow(workflow)
        checked = [self.agents.validate(agent) for agent in agents]
        check_workflow(spec, [agent.name for agent in checked], subject=subject)
        config = {**(config or {}), "flow": WORKFLOW, "workflow": spec.to_json()}
        return await self._create_with_agents(spec.session_goal, checked, user_id, config, budget)

    async def _create_with_agents(
        self,
        goal: str,
        agents: Iterable[AgentDefinition | dict[str, Any]],
        user_id: str,
        config: JsonObject,
        budget: Budget | dict[str, Any] | None,
    ) -> Session:
        checked = SessionConfig.read(config).resolved()
        await asyncio.to_thread(checked.load_policy)  # a bad policy file stops us here
        config = checked.to_json()
        if isinstance(budget, dict):
            budget = parse_model(Budget, budget, "session budget")
        registered = await self.agents.register(agents)
        if not registered:
            raise ConfigError("a session needs at least one agent")
        versions = {agent.name: agent.version or 1 for agent in registered}
        return await self._create(
            goal, agent_versions=versions, user_id=user_id, config=config, budget=budget
        )

    async def run(self, session_id: str, *, fence: Fence | None = None) -> Session:
        """Run a team or workflow session to its end; a session that was interrupted resumes
        from its last checkpoint. A worker passes a `fence` that refuses every commit once
        it has lost the session's lease."""
        session = await self.sessions.get(session_id)
        if session.status.is_final:
            raise SessionNotResumable(
                f"session {session_id} has already ended ({session.status.value}); "
                "start a new session instead"
            )
        config = SessionConfig.read(session.config)
        if config.flow == FUNCTIONS:
            raise SessionNotResumable(
                f"session {session_id} runs a Python function flow; resume it from Python "
                "with Keel.run_flow(session_id, flow)"
            )
        agents = await self.agents.resolve(session.agent_versions)
        workflow = None
        if config.flow == WORKFLOW:
            workflow = parse_workflow(config.workflow, f"the workflow of session {session_id}")
        policy = await asyncio.to_thread(config.load_policy)
        await self.facts.sweep()  # expired facts are already invisible; this frees them
        workspace = await self._open_workspace(session, config)
        async with AsyncExitStack() as stack:
            agent_tools = {
                agent.name: await stack.enter_async_context(mcp_tools(agent))
                for agent in agents
                if agent.mcp_servers
            }
            flow = TeamFlow(
                session,
                agents,
                config.model_settings(),
                tools=builtin_tools(
                    backend=policy.sandbox.backend,
                    allow_unsandboxed=policy.sandbox.allow_unsandboxed,
                ),
                policy=policy,
                agent_tools=agent_tools,
                workspace=workspace.path if workspace else config.workspace_path(),
                snapshots=workspace,
                # Task worktrees are merged by the team's merge nodes, which a workflow
                # does not run: its steps work in the session's workspace.
                workspaces=self.workspaces if workflow is None else None,
                task_budget=config.task_budget,
                max_concurrency=config.max_concurrency,
                fail_fast=config.on_task_failure == "fail_fast",
                blackboard=Blackboard(
                    self.facts, self.decisions, self.artifacts, config.project_id()
                ),
                run_id=self.run_id,
                approval_wait_s=config.approval_timeout_s,
            )
            async with observe_session(
                self.events,
                session_id,
                metrics=self.metrics,
                tracer_provider=self.tracer_provider,
                workflow=workflow.name if workflow else None,
            ):
                # The change is kept before the final event, so whoever sees the session
                # end finds its branch committed and its final.patch stored.
                before_end = partial(self._keep_change, session, workspace) if workspace else None
                if workflow is None:
                    await self._loop.run(session_id, flow, fence=fence, before_end=before_end)
                else:
                    await self._loop.run(
                        session_id,
                        WorkflowFlow(workflow, flow),
                        fence=fence,
                        before_end=before_end,
                    )
        return await self.sessions.get(session_id)

    async def _open_workspace(self, session: Session, config: SessionConfig) -> Workspace | None:
        """The session's own workspace: a worktree on `keel/<session>` when its directory is
        in a git repository (the user's branch, index and files are never touched), else the
        directory itself with snapshots in a shadow git directory."""
        if config.workspace is None or not config.isolate:
            return None
        async with self._opening:  # sessions on one directory share its shadow repository
            if not self._pruned:  # once per process: what sessions that are gone left behind
                self._pruned = True
                await self.prune_workspaces()
            workspace = await self.workspaces.open_session(session.id, config.workspace)
        payload: JsonObject = {
            "kind": workspace.kind,
            "path": str(workspace.path),
            "branch": workspace.branch,
        }
        if workspace.notes:
            payload["notes"] = list(workspace.notes)
        await self.events.append(
            session.id, self.run_id, [NewEvent(kinds.WORKSPACE_OPENED, "keel", payload)]
        )
        return workspace

    async def _keep_change(self, session: Session, workspace: Workspace) -> None:
        """Commit the session's change to its branch and keep it as a patch artifact. Runs
        again when a crash came before the session's end was committed: both steps are
        idempotent (an unchanged tree commits nothing; an equal patch is not stored twice)."""
        patch = await final_patch(workspace)
        if not patch.strip():
            return
        if workspace.kind == "worktree":
            await self.workspaces.commit_changes(workspace, f"keel: {session.goal}"[:200])
        content = patch.encode()
        checksum = hashlib.sha256(content).hexdigest()
        stored = await self.artifacts.list(session_id=session.id)
        if any(a.name == "final.patch" and checksum in (a.checksum or "") for a in stored):
            return
        actor = Actor("keel", session.id, self.run_id, MemoryScope.SESSION)
        await self.artifacts.put(content, name="final.patch", type=ArtifactType.CODE, actor=actor)

    resume = run

    async def delete_session(self, session_id: str) -> None:
        """Delete a session that is not running: its records, and its worktrees, branches
        and snapshot refs (a plain directory keeps its files)."""
        session = await self.sessions.get(session_id)
        if session.status is SessionStatus.RUNNING:
            raise IllegalTransition(
                f"session {session_id}", "running", "deleted", ["cancel it first"]
            )
        await self.engine.write(lambda tx: SessionRegistry.delete_in(tx, session_id))
        await self.workspaces.close_session(session_id)

    async def prune_workspaces(self) -> list[str]:
        """Remove the worktrees, branches and refs of sessions that no longer exist."""
        return await self.workspaces.prune(await self.sessions.ids())

    async def answer(
        self,
        approval_id: str,
        *,
        allow: bool,
        remember: bool = False,
        note: str | None = None,
        actor: str = "user",
    ) -> Approval:
        """Answer a pending approval; the task waiting for it continues (or is told no)."""
        answered = await self.approvals.answer(
            approval_id, allow=allow, actor=actor, remember=remember, note=note
        )
        self._loop.nudge()
        return answered

    async def cancel(
        self,
        session_id: str,
        task_id: str | None = None,
        *,
        reason: str = "cancelled by the user",
        actor: str = "user",
    ) -> None:
        """Ask to cancel a session (or one task and what depends on it). The process running
        it stops the work within a second; a session no process runs is cancelled when it
        is next resumed (`keel cancel` does that at once)."""
        await self.engine.write(
            lambda tx: cancel.request_in(tx, self.run_id, session_id, task_id, reason, actor)
        )
        self.events.notify(session_id)
        self._loop.nudge()

    async def message(self, session_id: str, text: str, *, user_id: str = "local") -> int:
        """A follow-up message from the user to a session that has not ended: kept as a
        session fact (`user.message.<n>`) that every agent of the session sees in its next
        model call, and recorded as a `session.message` event. Returns the message number."""
        if not text.strip():
            raise ConfigError("a message needs text")
        session = await self.sessions.get(session_id)
        if session.status.is_final:
            raise SessionNotResumable(
                f"session {session_id} has already ended ({session.status.value}); a "
                "follow-up needs a new session"
            )
        actor = Actor(user_id, session_id, self.run_id, MemoryScope.SESSION)

        def work(tx: Tx) -> int:
            tx.lock(f"messages:{session_id}")
            row = tx.fetchone(
                "SELECT COUNT(*) FROM events WHERE session_id = ? AND type = ?",
                (session_id, kinds.SESSION_MESSAGE),
            )
            number = int(row[0]) + 1 if row else 1
            self.facts.write_in(tx, actor, f"user.message.{number}", text)
            payload: JsonObject = {"text": text, "number": number}
            EventLog.append_in(
                tx, session_id, self.run_id, [NewEvent(kinds.SESSION_MESSAGE, user_id, payload)]
            )
            return number

        number = await self.engine.write(work)
        self.events.notify(session_id)
        return number

    async def submit(self, session_id: str) -> bool:
        """Queue a session for a worker (`keel worker`, or the workers `keel serve` embeds);
        False when it is already queued. A session that has ended cannot be queued."""
        session = await self.sessions.get(session_id)
        if session.status.is_final:
            raise SessionNotResumable(
                f"session {session_id} has already ended ({session.status.value}); "
                "start a new session instead"
            )
        queued = await self.engine.write(
            lambda tx: run_queue.enqueue_in(tx, self.run_id, session_id)
        )
        self.events.notify(session_id)
        for listener in self.queue_listeners:
            listener()
        return queued

    async def start_flow(self, name: str, *, user_id: str = "local") -> Session:
        """Create a session for a durable function flow named `name`."""
        return await self._create(
            name, agent_versions={}, user_id=user_id, config={"flow": FUNCTIONS}, budget=None
        )

    async def run_flow(self, session_id: str, flow: FunctionFlow) -> FunctionState:
        """Run (or resume) a function flow session to its end; return its final state."""
        return await self._loop.run(session_id, flow)
