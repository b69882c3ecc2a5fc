"""`keel snapshots`, `keel diff` and `keel rollback`: a session's workspace from the command
line, on top of `keel.workspace.snapshots`.

`add_workspace_commands(app)` adds the three commands to a Typer app (the `keel` command
registers them at its top level); `app` is a Typer app with just these. A session's
workspace is found from the session's record (`session.config["workspace"]`) and the
workspace Keel made for it under the home; another lookup can be passed as `resolve`.
User mistakes print one line (`error: ...`) and exit 2.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keel.errors import KeelError
from keel.orchestrator import Keel
from keel.workspace import snapshots
from keel.workspace.errors import WorkspaceNotFound
from keel.workspace.model import Workspace
from keel.workspace.worktrees import WorkspaceManager

T = TypeVar("T")

WorkspaceResolver = Callable[[str, Path | None], Awaitable[Workspace]]
"""(session id, Keel home or None for the default) -> the session's workspace."""

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


async def session_workspace(session_id: str, home: Path | None) -> Workspace:
    """The workspace Keel made for the session on the directory its config names."""
    async with await Keel.open(home) as keel:
        session = await keel.sessions.get(session_id)
        keel_home = keel.settings.home
    path = (session.config or {}).get("workspace")
    if not isinstance(path, str) or not path:
        raise WorkspaceNotFound(
            f"session {session_id} has no workspace: it was started without a directory"
        )
    return await WorkspaceManager(keel_home).find_session(session_id, Path(path))


def _home(ctx: typer.Context) -> Path | None:
    """The `--home` given to the `keel` command, if these commands run under it."""
    home = ctx.find_root().params.get("home")
    return home if isinstance(home, Path) else None


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(main())
    except KeelError as error:
        err.print(Text(f"error: {error}", "bold red"))
        raise typer.Exit(error.exit_code) from None


def add_workspace_commands(
    app: typer.Typer, resolve: WorkspaceResolver = session_workspace
) -> None:
    """Add `snapshots`, `diff` and `rollback` to `app`."""

    @app.command("snapshots")
    def snapshots_command(
        ctx: typer.Context,
        session: Annotated[str, typer.Argument(help="The session whose snapshots to list.")],
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    ) -> None:
        """List a session's workspace snapshots, oldest first (0 is where it started)."""

        async def main() -> None:
            workspace = await resolve(session, _home(ctx))
            found = await snapshots.list_snapshots(workspace)
            if as_json:
                for snap in found:
                    line = {
                        "id": snap.id,
                        "commit": snap.commit,
                        "label": snap.label,
                        "createdAt": snap.created_at.isoformat(),
                        "filesChanged": snap.files_changed,
                    }
                    print(json.dumps(line), flush=True)
                return
            table = Table("snapshot", "commit", "created", "files", "label", box=None)
            for snap in found:
                table.add_row(
                    snap.id,
                    snap.short,
                    snap.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    str(snap.files_changed),
                    snap.label,
                )
            out.print(table)
            out.print(Text(f"workspace: {workspace.path}", "dim"))

        _run(main)

    @app.command("diff")
    def diff_command(
        ctx: typer.Context,
        session: Annotated[str, typer.Argument(help="The session whose workspace to diff.")],
        a: Annotated[
            str | None, typer.Argument(help="From this snapshot (default: the latest).")
        ] = None,
        b: Annotated[
            str | None, typer.Argument(help="To this snapshot (default: the files now).")
        ] = None,
    ) -> None:
        """Show what changed in a session's workspace: from snapshot A (default: the
        latest) to snapshot B (default: the files now), as a unified diff."""

        async def main() -> None:
            workspace = await resolve(session, _home(ctx))
            patch = await snapshots.diff(workspace, a, b)
            if patch:
                sys.stdout.write(patch)
                sys.stdout.flush()
            else:
                err.print("no differences")

        _run(main)

    @app.command("rollback")
    def rollback_command(
        ctx: typer.Context,
        session: Annotated[str, typer.Argument(help="The session whose workspace to restore.")],
        snapshot: Annotated[
            str | None,
            typer.Argument(help="Snapshot number or commit (default: undo the last change)."),
        ] = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Roll back even with changes made outside Keel; a safety snapshot keeps them.",
            ),
        ] = False,
    ) -> None:
        """Restore a session's workspace files to a snapshot exactly. No branch moves, and
        the rollback is itself a snapshot, so it can be undone."""

        async def main() -> None:
            workspace = await resolve(session, _home(ctx))
            done = await snapshots.rollback(workspace, snapshot, force=force)
            if done.safety is not None:
                out.print(
                    f"changes made outside Keel are kept in snapshot {done.safety.id} "
                    f"({done.safety.short})"
                )
            if not done.files:
                out.print(f"session {session} already has the files of snapshot {done.restored.id}")
                return
            out.print(
                f"rolled back session {session} to snapshot {done.restored.id} "
                f"({done.restored.label}): {len(done.files)} file(s) restored; "
                f"undo with `keel rollback {session} {done.snapshot.number - 1}`"
            )

        _run(main)


app = typer.Typer(
    help="A session's workspace: snapshots, diffs and rollback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
add_workspace_commands(app)
