"""How the `keel` commands show records: the same tables whether the records come from
the local store or from a server (`KEEL_URL`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from keel.cli.view import STATUS_STYLE, SessionView
from keel.guardrails.approvals import Approval
from keel.types import AgentDefinition, Session, Task


class TaskNode(Protocol):
    """A task and its children: the registry's tree, or the client's."""

    @property
    def task(self) -> Task: ...

    @property
    def children(self) -> Sequence[TaskNode]: ...


def sessions_table(found: Sequence[Session]) -> Table:
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
    return table


def approvals_table(found: Sequence[Approval]) -> Table:
    table = Table("approval", "status", "session", "agent", "tool", "call", "risk", "why", box=None)
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
    return table


def agents_table(found: Sequence[AgentDefinition]) -> Table:
    table = Table("name", "version", "role", "model", "tools", "permissions", "memory", box=None)
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
    return table


def task_tree(session: Session, roots: Sequence[TaskNode]) -> Tree:
    tree = Tree(Text(f"session {session.id} · {session.status.value}", "bold"))

    def add(branch: Tree, nodes: Sequence[TaskNode]) -> None:
        for node in nodes:
            icon, style = STATUS_STYLE[node.task.status.value]
            label = Text()
            label.append(f"{icon} ", style)
            label.append(node.task.goal)
            label.append(f"  [{node.task.assigned_agent or '-'}]  {node.task.id}", "dim")
            label.append(f"  {node.task.status.value}", style)
            add(branch.add(label), node.children)

    add(tree, roots)
    return tree


def print_summary(
    console: Console,
    session: Session,
    view: SessionView,
    seconds: float,
    *,
    where: tuple[str, str],
    workspace: bool = True,
) -> None:
    """What a finished (or stopped) run did: status, tasks, events, tokens, time, `where`
    its data is (a label and a place) and, with `workspace`, where its change is."""
    counts = view.counts()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    status_style = {"done": "green", "failed": "red"}.get(session.status.value, "yellow")
    table.add_row("session", Text(f"{session.id}  {session.status.value}", status_style))
    table.add_row("goal", session.goal)
    table.add_row(
        "tasks",
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none",
    )
    table.add_row("events", str(view.events))
    table.add_row("tokens", f"{view.input_tokens} in, {view.output_tokens} out")
    table.add_row("wall time", f"{seconds:.2f} s")
    table.add_row(*where)
    opened = view.workspace
    if workspace and opened:
        path = opened.get("path", "")
        branch = opened.get("branch")
        change = f"keel diff {session.id}" + (f"; branch {branch}" if branch else "")
        table.add_row("workspace", f"{path}  ({change})")
    if session.final_answer:
        table.add_row("answer", session.final_answer)
    console.print()
    console.print(table)
    console.print(
        Text(
            f"inspect: keel events {session.id} · keel tasks {session.id} · keel sessions",
            "dim",
        )
    )
