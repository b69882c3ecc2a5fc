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
from collections.abc import Callable, Iterable
from pathlib import Path

from rich.live import Live
from rich.text import Text

from keel.cli.command import err, out
from keel.cli.tables import (
    agents_table,
    approvals_table,
    print_summary,
    sessions_table,
    task_tree,
)
from keel.cli.view import SessionView, event_line
from keel.client import URL_VARIABLE, KeelClient
from keel.errors import KeelError
from keel.events import kinds
from keel.registry import load_folder
from keel.server.schemas import TaskTreeNode
from keel.types import AgentDefinition, JsonObject, TraceEvent

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
    seconds = time.perf_counter() - started
    print_summary(out, session, view, seconds, where=("server", client.config.url), workspace=False)
    return 0 if session.status.value == "done" else 1


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
        out.print(sessions_table(found))
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
        out.print(task_tree(current, client.tasks(session)))
        return 0

    return _with_client(command)


def approvals(session: str | None, *, every: bool) -> int:
    def command(client: KeelClient) -> int:
        found = client.approvals(session, every=every)
        if not found:
            out.print("no approvals waiting" if not every else "no approvals")
            return 0
        out.print(approvals_table(found))
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
        out.print(agents_table(found))
        return 0

    return _with_client(command)
