"""`keel mcp` and `keel acp`: Keel as an MCP server and as an editor's agent (Agent Client
Protocol), both over stdio.

`add_gateway_commands(app)` adds the two commands to a Typer app. Both speak JSON-RPC on
stdout, so nothing else may be printed there: mistakes go to stderr in one line (exit 2).
The SDKs are optional extras; a missing one is named with the package to install.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from keel.cli.builtin_team import default_team
from keel.errors import ConfigError, KeelError
from keel.orchestrator import Keel
from keel.registry import load_folder
from keel.types import AgentDefinition

err = Console(stderr=True, highlight=False, soft_wrap=True)

AgentsOption = Annotated[
    Path | None,
    typer.Option(help="Folder of agent YAML files (default: the built-in team)."),
]


def _home(ctx: typer.Context) -> Path | None:
    """The `--home` given to the `keel` command, if these commands run under it."""
    home = ctx.find_root().params.get("home")
    return home if isinstance(home, Path) else None


def _team(folder: Path | None) -> list[AgentDefinition] | None:
    return load_folder(folder) if folder is not None else None


def _missing(extra: str, error: ImportError) -> ConfigError:
    return ConfigError(
        f"`keel {extra}` needs the {extra.upper()} SDK ({error.name}): pip install 'keel[{extra}]'"
    )


def _serve(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Serve until the client disconnects; a KeelError is one line on stderr."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    except KeelError as error:
        err.print(Text(f"error: {error}", "bold red"))
        raise typer.Exit(error.exit_code) from None


def add_gateway_commands(app: typer.Typer) -> None:
    """Add `mcp` and `acp` to `app`."""

    @app.command("mcp")
    def mcp_command(
        ctx: typer.Context,
        agents: AgentsOption = None,
        workspace: Annotated[
            Path | None,
            typer.Option(help="Directory sessions work in when they name none."),
        ] = None,
    ) -> None:
        """Serve Keel as an MCP server over stdio: tools to start, follow, answer and cancel
        sessions; resources for sessions, task trees and artifacts."""

        async def main() -> None:
            try:
                from keel.gateway.mcp_server import build_mcp_server
            except ImportError as error:
                raise _missing("mcp", error) from None
            team = _team(agents)
            where = workspace.expanduser().resolve() if workspace is not None else None
            if where is not None and not where.is_dir():
                raise ConfigError(f"the workspace {where} is not a directory")
            async with await Keel.open(_home(ctx)) as keel:
                server = build_mcp_server(keel, team=team, workspace=where)
                await server.run_stdio_async()

        _serve(main)

    @app.command("acp")
    def acp_command(
        ctx: typer.Context,
        agents: AgentsOption = None,
        scripted_delay: Annotated[
            int, typer.Option(help="Milliseconds each scripted model call takes.", min=0)
        ] = 0,
    ) -> None:
        """Be an editor's agent (Agent Client Protocol over stdio): each prompt is a Keel
        session on the editor's project, streamed to the editor."""

        async def main() -> None:
            try:
                from keel.gateway.acp_agent import serve_acp
            except ImportError as error:
                raise _missing("acp", error) from None
            team = _team(agents) or default_team()
            async with await Keel.open(_home(ctx)) as keel:
                await serve_acp(keel, team, scripted_latency_ms=scripted_delay)

        _serve(main)
