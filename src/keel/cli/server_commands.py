"""`keel serve`, `keel worker` and `keel token`: the session API, the workers that run
queued sessions, and the API's tokens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from keel.cli.builtin_team import default_team
from keel.cli.command import err, home_of, out, run_command
from keel.events import now_us
from keel.observability import KeelMetrics
from keel.observability.metrics_http import serve_metrics
from keel.orchestrator import Keel
from keel.registry import load_folder
from keel.server import ServerOptions, create_app
from keel.server.tokens import create_token, has_tokens, list_tokens, revoke_token
from keel.workers import Worker
from keel.workers.worker import LEASE_S

DEFAULT_PORT = 8420
ADMIN_TOKEN_FILE = "admin.token"

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


async def _prepare(home: Path | None, agents: Path | None) -> None:
    """Register the agents the server starts with, and give a new store its first token."""
    async with await Keel.open(home) as keel:
        if agents is not None:
            registered = await keel.agents.register(load_folder(agents))
            out.print(f"registered {len(registered)} agents from {agents}")
        elif not await keel.agents.latest():
            registered = await keel.agents.register(default_team())
            names = ", ".join(agent.name for agent in registered)
            out.print(f"no agents registered: registered the built-in scripted team ({names})")
        if not await has_tokens(keel.engine):
            info, token = await create_token(keel.engine, "local", admin=True, name="first")
            path = Path(keel.settings.home) / ADMIN_TOKEN_FILE
            path.parent.mkdir(parents=True, exist_ok=True)  # PostgreSQL stores make no home
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(token + "\n")
            out.print(
                Text(
                    f"no API tokens yet: created admin token {info.id} for user 'local', "
                    f"saved in {path} (mode 600)",
                    "bold",
                )
            )


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def add_server_commands(app: typer.Typer) -> None:
    """Add `serve`, `worker` and `token` to `app`."""

    @app.command()
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = (
            DEFAULT_PORT
        ),
        workers: Annotated[
            int, typer.Option(help="Workers in this process (0: run none; `keel worker`s do).")
        ] = 1,
        capacity: Annotated[
            int, typer.Option(help="Sessions each worker runs at once.", min=1)
        ] = 8,
        lease: Annotated[
            float, typer.Option(help="Seconds a worker's lease lasts without renewal.", min=1)
        ] = LEASE_S,
        workspace_root: Annotated[
            Path, typer.Option(help="API sessions may only work in directories under this.")
        ] = Path("."),
        agents: Annotated[
            Path | None,
            typer.Option(
                help="Register the agents in this folder at start (default: the "
                "built-in team when none are registered)."
            ),
        ] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    ) -> None:
        """Serve the session API (and the protocol gateways) over HTTP."""
        import uvicorn

        if workers < 0:
            raise typer.BadParameter("must be 0 or more", param_hint="--workers")
        home = home_of(ctx)
        run_command(lambda: _prepare(home, agents))
        options = ServerOptions(
            workspace_root=workspace_root,
            workers=workers,
            worker_capacity=capacity,
            lease_s=lease,
            host=host,
        )
        server = create_app(lambda: Keel.open(home), options)
        out.print(f"Keel session API on http://{host}:{port}  (OpenAPI: /openapi.json)")
        uvicorn.run(server, host=host, port=port, log_level=log_level.lower())

    @app.command()
    def worker(
        ctx: typer.Context,
        capacity: Annotated[int, typer.Option(help="Sessions run at once.", min=1)] = 8,
        lease: Annotated[
            float, typer.Option(help="Seconds a lease lasts without renewal.", min=1)
        ] = LEASE_S,
        metrics_port: Annotated[
            int | None,
            typer.Option(help="Serve Prometheus metrics on this port (GET /metrics).", min=0),
        ] = None,
        metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = (
            "127.0.0.1"
        ),
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    ) -> None:
        """Run queued sessions until stopped (SIGINT/SIGTERM hand the leases back)."""
        home = home_of(ctx)
        _logging(log_level)

        async def main() -> None:
            async with contextlib.AsyncExitStack() as stack:
                keel = await stack.enter_async_context(await Keel.open(home))
                if metrics_port is not None:
                    keel.metrics = KeelMetrics()
                    await stack.enter_async_context(
                        serve_metrics(keel.metrics, keel.engine, metrics_host, metrics_port)
                    )
                    out.print(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
                running = Worker(keel, capacity=capacity, lease_s=lease)
                out.print(
                    f"worker {running.id} on {keel.engine.url}: up to {capacity} sessions, "
                    f"lease {lease:g} s"
                )
                task = asyncio.create_task(running.run())
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, task.cancel)
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                stats = running.stats
                out.print(
                    f"worker {running.id} stopped: {stats.claimed} claimed, "
                    f"{stats.finished} finished, {stats.failed} failed"
                )

        run_command(main)

    app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user id the token acts for.")],
    admin: Annotated[
        bool, typer.Option(help="May also change the agent registry and the policy.")
    ] = False,
    name: Annotated[str, typer.Option(help="A label, e.g. where the token is used.")] = "",
) -> None:
    """Create a token and print it (only now: Keel keeps a hash)."""
    home = home_of(ctx)

    async def main() -> None:
        async with await Keel.open(home) as keel:
            info, token = await create_token(keel.engine, user, admin=admin, name=name)
        err.print(f"token {info.id} for user '{info.user_id}'{' (admin)' if admin else ''}:")
        print(token)

    run_command(main)


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """The tokens (never the secrets): id, user, admin, name, age, revoked."""
    home = home_of(ctx)

    async def main() -> None:
        async with await Keel.open(home) as keel:
            found = await list_tokens(keel.engine)
        if not found:
            out.print("no tokens yet: `keel token create USER`")
            return
        table = Table("token", "user", "admin", "name", "age", "state", box=None)
        for info in found:
            age_s = (now_us() - info.created_at) // 1_000_000
            table.add_row(
                info.id,
                info.user_id,
                "yes" if info.admin else "",
                info.name,
                f"{age_s // 86400} d" if age_s >= 86400 else f"{age_s // 60} min",
                "revoked" if info.revoked else "active",
            )
        out.print(table)

    run_command(main)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    home = home_of(ctx)

    async def main() -> None:
        async with await Keel.open(home) as keel:
            await revoke_token(keel.engine, token_id)
        out.print(f"token {token_id} revoked")

    run_command(main)
