"""`keel workflow`: check a workflow file, and run it as a session here.

    keel workflow validate FILE [--agents DIR]
    keel workflow run FILE [--agents DIR] [--workspace DIR | --demo] [--plain]

A bad file prints one line per problem (file, node, field) and exits 2. A run that is
interrupted continues with `keel resume SESSION`: the session keeps the workflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keel.cli.builtin_team import default_team
from keel.cli.demo import create_demo_repo
from keel.cli.session_runner import run_in_foreground
from keel.errors import KeelError
from keel.orchestrator import Keel
from keel.orchestrator.workflow_checks import check_workflow
from keel.orchestrator.workflow_spec import (
    AgentNode,
    ApprovalNode,
    ConditionNode,
    ParallelNode,
    ToolNode,
    WorkflowNode,
    WorkflowSpec,
    kind_of,
    read_workflow,
)
from keel.registry import load_folder
from keel.types import AgentDefinition

workflow_app = typer.Typer(help="Check and run workflow files.", no_args_is_help=True)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

AgentsOption = Annotated[
    Path | None, typer.Option(help="Folder of agent YAML files (default: the built-in team).")
]


def _report(error: KeelError) -> None:
    lines: list[str] = getattr(error, "lines", lambda: [])()
    subject = getattr(error, "subject", None)
    if lines and subject:
        err.print(Text(f"error: {subject}", "bold red"))
        for line in lines:
            err.print(Text(f"  {line}", "red"))
    else:
        err.print(Text(f"error: {error}", "bold red"))


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(main())
    except KeelError as error:
        _report(error)
        raise typer.Exit(error.exit_code) from None


def _home(ctx: typer.Context) -> Path | None:
    """The `--home` given to `keel` itself, when this app runs under it."""
    home = ctx.find_root().params.get("home")
    return Path(home) if home is not None else None


def _agents(folder: Path | None) -> list[AgentDefinition]:
    if folder is not None:
        return load_folder(folder)

    return default_team()


def _checked(file: Path, agents: list[AgentDefinition]) -> tuple[WorkflowSpec, list[str]]:
    spec, subject = read_workflow(file)
    return spec, check_workflow(spec, [agent.name for agent in agents], subject=subject)


def _does(node: WorkflowNode) -> str:
    match node:
        case AgentNode():
            return f"{node.agent}: {node.goal}"
        case ToolNode():
            return f"{node.tool} {node.args}" if node.args else node.tool
        case ParallelNode():
            return f"{', '.join(node.parallel)} (join: {node.join})"
        case ConditionNode():
            return f"if {node.condition}"
        case ApprovalNode():
            return node.approval
    raise AssertionError(node)


def _after(node: WorkflowNode) -> str:
    if isinstance(node, ConditionNode):
        return f"then {node.then}, else {node.otherwise}"
    return node.next or "end of path"


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(Text(f"warning: {warning}", "yellow"))


@workflow_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).")],
    agents: AgentsOption = None,
) -> None:
    """Check FILE against the agents; list its nodes, or name each problem."""
    try:
        spec, warnings = _checked(file, _agents(agents))
    except KeelError as error:
        _report(error)
        raise typer.Exit(error.exit_code) from None
    table = Table("node", "kind", "does", "then", box=None)
    for name, node in spec.nodes.items():
        table.add_row(name, kind_of(node), _does(node), _after(node))
    out.print(table)
    _warn(warnings)
    out.print(f"workflow '{spec.name}' is valid: {len(spec.nodes)} nodes, starts at '{spec.start}'")


@workflow_app.command("run")
def run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).")],
    agents: AgentsOption = None,
    workspace: Annotated[
        Path | None,
        typer.Option(help="Directory the steps work in (default: the current one)."),
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Work in a new copy of the demo repository (its tests fail).")
    ] = False,
    scripted_delay: Annotated[
        int, typer.Option(help="Milliseconds each scripted model call takes.", min=0)
    ] = 0,
    plain: Annotated[bool, typer.Option(help="Print events line by line, no live view.")] = False,
) -> None:
    """Run the workflow in FILE as a new session here, showing it live."""
    if demo and workspace is not None:
        raise typer.BadParameter("give --workspace or --demo, not both", param_hint="--demo")
    home = _home(ctx)

    async def main() -> int:
        team = _agents(agents)
        _, warnings = _checked(file, team)
        _warn(warnings)
        where = workspace or Path(".")
        if demo:
            where = await asyncio.to_thread(create_demo_repo)
            out.print(Text(f"demo repository: {where} (its tests fail)", "bold"))
        config = {"workspace": str(where), "scriptedLatencyMs": scripted_delay}
        async with await Keel.open(home) as keel:
            session = await keel.create_workflow_session(file, team, config=config)
            try:
                finished = await run_in_foreground(
                    keel, session.id, out, live=not plain and out.is_terminal
                )
            except asyncio.CancelledError:
                err.print(
                    f"interrupted: session {session.id} is checkpointed; "
                    f"continue with `keel resume {session.id}`"
                )
                raise
        return 0 if finished.status.value == "done" else 1

    raise typer.Exit(_run(main))
