"""The `keel` commands against a Keel server: when `KEEL_URL` is set, `run`, `resume`,
`cancel`, `sessions`, `events`, `tasks`, `approvals`, `approve`, `delete` and
`agents list` talk to it (with `KEEL_TOKEN`) through `keel.client` instead of opening the
local store. Commands that only make sense here (demo, snapshots, serve, worker, token)
stay local.

Each function is one command's remote variant and answers its exit code; a `KeelError` is
one line on stderr and exit 2, as for the local commands. This module never opens a store.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from keel.cli.command import err, out
from keel.cli.view import STATUS_STYLE, SessionView, event_line
from keel.client import URL_VARIABLE, KeelClient
from keel.errors import KeelError
from keel.events import kinds
from keel.registry import load_folder
from keel.server.schemas import TaskTreeNode
from keel.types import AgentDefinition, JsonObject, Session, TraceEvent

CANCEL_WAIT_S = 5.0
INTERRUPTED = 130

ModelOverride = Callable[[list[AgentDefinition], str], list[AgentDefinition]]


def enabled() -> bool:
    """Whether `keel` talks to a server: `KEEL_URL` is set."""
    return bool(os.environ.get(URL_VARIABLE, "").strip())


def _with_client(command: Callable[[KeelClient], int]) -> int:
    try:
        with KeelClient() as client:
            return command(client)
    except KeelError as error:
        err.print(Text(f"error: {error}", "bold red"))
        return error.exit_code


# -- running ----------------------------------------------------------------------------


def run(
    goal: str,
    *,
    agents: Path | None,
    model: str | None,
    workspace: Path,
    scripted_delay: int,
    plain: bool,
    override_model: ModelOverride,
) -> int:
    """Create the session on the server and follow it to its end. `--agents` and `--model`
    send full agent definitions, which only an admin token may; `--workspace` names a
    directory on the server (relative paths: under its workspace root)."""

    def command(client: KeelClient) -> int:
        team: list[str | AgentDefinition] | None = None
        if agents is not None or model is not None:
            found = load_folder(agents) if agents is not None else client.agents()
            team = list(override_model(found, model) if model is not None else found)
        config: JsonObject = {}
        if workspace != Path("."):
            config["workspace"] = str(workspace)
        if scripted_delay:
            config["scriptedLatencyMs"] = scripted_delay
        session = client.create_session(goal, agents=team, config=config or None)
        out.print(Text(f"session {session.id} on {client.config.url}", "dim"))
        return _follow_to_end(client, session.id, plain)

    return _with_client(command)


def resume(session: str, *, plain: bool) -> int:
    """Queue the session again on the server and follow it to its end."""

    def command(client: KeelClient) -> int:
        accepted = client.resume(session)
        how = "queued again" if accepted.queued else "already queued or running"
        out.print(Text(f"session {session} {how} on {client.config.url}", "dim"))
        return _follow_to_end(client, session, plain)

    return _with_client(command)


def _follow_to_end(client: KeelClient, session_id: str, plain: bool) -> int:
    view = SessionView(session_id)
    started = time.perf_counter()
    live = not plain and out.is_terminal
    display = Live(view.render(), console=out, refresh_per_second=12) if live else None
    try:
        with display if display is not None else contextlib.nullcontext():
            for event in client.stream_events(session_id):
                view.add(event)
                if display is not None:
                    display.update(view.render())
                elif event.type != kinds.MODEL_DELTA:
                    out.print(event_line(event))
    except KeyboardInterrupt:
        err.print(
            f"interrupted: session {session_id} keeps running on the server; follow it with "
            f"`keel events {session_id} -f`, stop it with `keel cancel {session_id}`"
        )
        return INTERRUPTED
    session = client.get_session(session_id)
    _summary(client, session, view, time.perf_counter() - started)
    return 0 if session.status.value == "done" else 1


def _summary(client: KeelClient, session: Session, view: SessionView, seconds: float) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    style = {"done": "green", "failed": "red"}.get(session.status.value, "yellow")
    counts = view.counts()
    table.add_row("session", Text(f"{session.id}  {session.status.value}", style))
    table.add_row("goal", session.goal)
    table.add_row("tasks", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")
    table.add_row("events", str(view.events))
    table.add_row("tokens", f"{view.input_tokens} in, {view.output_tokens} out")
    table.add_row("wall time", f"{seconds:.2f} s")
    table.add_row("server", client.config.url)
    if session.final_answer:
        table.add_row("answer", session.final_answer)
    out.print()
    out.print(table)
    inspect = f"inspect: keel events {session.id} · keel tasks {session.id} · keel sessions"
    out.print(Text(inspect, "dim"))


def cancel(session: str, *, task: str | None, reason: str) -> int:
    """Ask the server to cancel; wait a little for its worker to confirm."""

    def command(client: KeelClient) -> int:
        accepted = client.cancel(session, task_id=task, reason=reason)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            if task is None and client.get_session(session).status.is_final:
                out.print(f"session {session} cancelled")
                return 0
            node = _find(client.tasks(session), task) if task is not None else None
            if node is not None and node.task.status.is_final:
                out.print(f"task {task} cancelled")
                return 0
            time.sleep(0.1)
        what = f"task {task}" if task is not None else f"session {session}"
        where = "when a worker takes the session" if accepted.queued else "soon"
        out.print(f"cancel requested: the server stops {what} {where}")
        return 0

    return _with_client(command)


def _find(nodes: Iterable[TaskTreeNode], task_id: str) -> TaskTreeNode | None:
    for node in nodes:
        if node.task.id == task_id:
            return node
        found = _find(node.children, task_id)
        if found is not None:
            return found
    return None


# -- reading ----------------------------------------------------------------------------


def sessions(*, limit: int, as_json: bool) -> int:
    def command(client: KeelClient) -> int:
        found = client.list_sessions(limit=limit)
        if as_json:
            for session in found:
                out.print_json(data=session.to_json(), indent=None)
            return 0
        if not found:
            out.print(f'no sessions on {client.config.url} yet: start one with `keel run "GOAL"`')
            return 0
        table = Table("session", "status", "created", "user", "goal", box=None)
        for session in found:
            style = STATUS_STYLE.get(session.status.value, ("", ""))[1]
            table.add_row(
                session.id,
                Text(session.status.value, style),
                session.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                session.user_id,
                session.goal,
            )
        out.print(table)
        return 0

    return _with_client(command)


def events(session: str, *, after: int, follow: bool, as_json: bool) -> int:
    """Print the events in pages; with `follow`, then stream the rest until the end."""

    def show(event: TraceEvent) -> None:
        if as_json:
            print(json.dumps(event.to_json()), flush=True)
        else:
            out.print(event_line(event))

    def command(client: KeelClient) -> int:
        cursor = after
        while True:
            page = client.events(session, after=cursor, limit=500)
            for event in page.events:
                show(event)
                cursor = event.seq
            if not page.events or cursor >= page.last_seq:
                break
        # what was read was written before this status: a live session's end is still ahead
        if follow and not client.get_session(session).status.is_final:
            try:
                for event in client.stream_events(session, after=cursor):
                    show(event)
            except KeyboardInterrupt:
                return INTERRUPTED
        return 0

    return _with_client(command)


def tasks(session: str) -> int:
    def command(client: KeelClient) -> int:
        current = client.get_session(session)
        tree = Tree(Text(f"session {current.id} · {current.status.value}", "bold"))

        def add(branch: Tree, nodes: Sequence[TaskTreeNode]) -> None:
            for node in nodes:
                icon, style = STATUS_STYLE[node.task.status.value]
                label = Text()
                label.append(f"{icon} ", style)
                label.append(node.task.goal)
                label.append(f"  [{node.task.assigned_agent or '-'}]  {node.task.id}", "dim")
                label.append(f"  {node.task.status.value}", style)
                add(branch.add(label), node.children)

        add(tree, client.tasks(session))
        out.print(tree)
        return 0

    return _with_client(command)


def approvals(session: str | None, *, every: bool) -> int:
    def command(client: KeelClient) -> int:
        found = client.approvals(session, every=every)
        if not found:
            out.print("no approvals waiting" if not every else "no approvals")
            return 0
        table = Table(
            "approval", "status", "session", "agent", "tool", "call", "risk", "why", box=None
        )
        for approval in found:
            call = approval.arguments.get("command") or approval.arguments.get("path") or ""
            table.add_row(
                approval.id,
                approval.status,
                approval.session_id,
                approval.agent,
                approval.tool,
                str(call),
                str(approval.risk),
                "; ".join(approval.reasons),
            )
        out.print(table)
        return 0

    return _with_client(command)


def approve(approval: str, *, allow: bool, remember: bool, note: str | None) -> int:
    def command(client: KeelClient) -> int:
        answered = client.answer_approval(approval, allow=allow, remember=remember, note=note)
        out.print(f"approval {answered.id} {answered.status}")
        return 0

    return _with_client(command)


def delete(session: str) -> int:
    def command(client: KeelClient) -> int:
        client.delete_session(session)
        out.print(f"session {session} deleted")
        return 0

    return _with_client(command)


def agents_list() -> int:
    def command(client: KeelClient) -> int:
        found = client.agents()
        if not found:
            out.print(f"no agents registered on {client.config.url}")
            return 0
        table = Table(
            "name", "version", "role", "model", "tools", "permissions", "memory", box=None
        )
        for agent in found:
            table.add_row(
                agent.name,
                str(agent.version or "-"),
                agent.role,
                agent.model,
                ", ".join(agent.tools) or "-",
                ", ".join(f"{p.level.value} {p.scope}" for p in agent.permissions) or "-",
                agent.memory_scope.value,
            )
        out.print(table)
        return 0

    return _with_client(command)
