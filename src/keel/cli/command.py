"""What every `keel` command module shares: the consoles, the home the root command was
given, and running a command's coroutine so that a `KeelError` is one line and exit 2."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keel.errors import KeelError

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def home_of(ctx: typer.Context) -> Path | None:
    """The `--home` given to the `keel` command, if the command runs under it."""
    home = ctx.find_root().params.get("home")
    return home if isinstance(home, Path) else None


def run_command(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; a KeelError is one line on stderr and its exit code."""
    try:
        return asyncio.run(main())
    except KeelError as error:
        err.print(Text(f"error: {error}", "bold red"))
        raise typer.Exit(error.exit_code) from None
