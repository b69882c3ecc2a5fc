"""The `keel` command: run, resume and inspect sessions; validate agents; the demo.

User mistakes print one line (`error: ...`) and exit 2; nothing is half-written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keel.cli import remote
from keel.cli.builtin_team import default_team
from keel.cli.demo import DEMO_GOAL, create_demo_repo
from keel.cli.gateway_commands import add_gateway_commands
from keel.cli.observe_commands import add_observe_commands
from keel.cli.server_commands import add_server_commands
from keel.cli.session_runner import run_in_foreground
from keel.cli.tables import agents_table, approvals_table, sessions_table, task_tree
from keel.cli.view import event_line
from keel.cli.workflow_commands import workflow_app
from keel.cli.workspace_commands import add_workspace_commands
from keel.errors import KeelError
from keel.events import kinds
from keel.models import BUILTIN_SCRIPTS, PROVIDERS
from keel.orchestrator import Keel
from keel.orchestrator.session_config import SessionConfig
from keel.registry import AgentFolderError, build_tree, load_folder
from keel.types import AgentDefinition
from keel.workspace import describe_sandbox

T = TypeVar("T")

app = typer.Typer(
    name="keel",
    help="Keel: a durable multi-agent runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
agents_app = typer.Typer(help="Validate and list agent definitions.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
add_workspace_commands(app)
add_observe_commands(app)
add_gateway_commands(app)
add_server_commands(app)
app.add_typer(workflow_app, name="workflow")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DEMO_LATENCY_MS = 250
CANCEL_WAIT_S = 2.0


class _Options:
    home: Path | None = None


def _report(error: KeelError) -> None:
    if isinstance(error, AgentFolderError):
        err.print(Text(f"error: {error.subject}", "bold red"))
        for line in error.lines():
            err.print(Text(f"  {line}", "red"))
    else:
        err.print(Text(f"error: {error}", "bold red"))


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; a KeelError is one line on stderr and its exit code."""
    try:
        return asyncio.run(main())
    except KeelError as error:
        _report(error)
        raise typer.Exit(error.exit_code) from None


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option(
            help="Data directory (default: $KEEL_HOME, else ./.keel).", show_default=False
        ),
    ] = None,
) -> None:
    _Options.home = home


def _override_model(agents: list[AgentDefinition], model: str) -> list[AgentDefinition]:
    """`--model scripted` gives each agent the script named for its role (else `worker`);
    `--model provider:name` gives every agent that model."""
    if ":" in model:
        return [agent.model_copy(update={"model": model}) for agent in agents]
    if model != "scripted":
        known = ", ".join(sorted(PROVIDERS))
        raise typer.BadParameter(
            f"'{model}' is not a model; write 'scripted' or 'provider:name' (providers: {known})",
            param_hint="--model",
        )
    return [
        agent.model_copy(
            update={
                "model": f"scripted:{agent.role if agent.role in BUILTIN_SCRIPTS else 'worker'}"
            }
        )
        for agent in agents
    ]


def _live(plain: bool) -> bool:
    return not plain and out.is_terminal


async def _run_session(
    goal: str | None,
    session_id: str | None,
    team: list[AgentDefinition],
    config: dict[str, Any],
    live: bool,
) -> int:
    """Create a session (when `goal` is given) or resume `session_id`, and run it here."""
    async with await Keel.open(_Options.home) as keel:
        if goal is not None:
            session_id = (await keel.create_session(goal, team, config=config)).id
        assert session_id is not None
        session = await keel.sessions.get(session_id)
        policy = SessionConfig.read(session.config).load_policy()
        line = await asyncio.to_thread(
            describe_sandbox,
            policy.sandbox.backend,
            allow_unsandboxed=policy.sandbox.allow_unsandboxed,
        )
        out.print(Text(line, "dim"))
        try:
            session = await run_in_foreground(keel, session_id, out, live=live)
        except asyncio.CancelledError:
            err.print(
                f"interrupted: session {session_id} is checkpointed; "
                f"continue with `keel resume {session_id}`"
            )
            raise
    return 0 if session.status.value == "done" else 1


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What the agents should do.")],
    agents: Annotated[
        Path | None,
        typer.Option(help="Folder of agent YAML files (default: the built-in team)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Use this model for every agent: 'scripted' or 'provider:name'."),
    ] = None,
    workspace: Annotated[
        Path,
        typer.Option(help="Directory the agents' tools work in (default: the current one)."),
    ] = Path("."),
    scripted_delay: Annotated[
        int, typer.Option(help="Milliseconds each scripted model call takes.", min=0)
    ] = 0,
    plain: Annotated[bool, typer.Option(help="Print events line by line, no live view.")] = False,
) -> None:
    """Start a session for GOAL and run it here, showing its task tree and events live."""
    if remote.enabled():
        raise typer.Exit(
            remote.run(
                goal,
                agents=agents,
                model=model,
                workspace=workspace,
                scripted_delay=scripted_delay,
                plain=plain,
                override_model=_override_model,
            )
        )

    async def main() -> int:
        team = load_folder(agents) if agents is not None else default_team()
        if model is not None:
            team = _override_model(team, model)
        config = {"scriptedLatencyMs": scripted_delay, "workspace": str(workspace)}
        return await _run_session(goal, None, team, config, _live(plain))

    raise typer.Exit(_run(main))


@app.command()
def resume(
    session: Annotated[str, typer.Argument(help="The session to continue.")],
    plain: Annotated[bool, typer.Option(help="Print events line by line, no live view.")] = False,
) -> None:
    """Continue an interrupted session from its last checkpoint."""
    if remote.enabled():
        raise typer.Exit(remote.resume(session, plain=plain))
    raise typer.Exit(_run(lambda: _run_session(None, session, [], {}, _live(plain))))


@app.command()
def demo(
    scripted_delay: Annotated[
        int, typer.Option(help="Milliseconds each scripted model call takes.", min=0)
    ] = DEMO_LATENCY_MS,
    plain: Annotated[bool, typer.Option(help="Print events line by line, no live view.")] = False,
) -> None:
    """A planner, a coder, a tester and a reviewer (scripted models) fix a failing test in
    a new git repository, shown live."""

    async def main() -> int:
        repo = await asyncio.to_thread(create_demo_repo)
        out.print(Text(f"demo repository: {repo} (its tests fail)", "bold"))
        config = {"scriptedLatencyMs": scripted_delay, "workspace": str(repo)}
        return await _run_session(DEMO_GOAL, None, default_team(), config, _live(plain))

    raise typer.Exit(_run(main))


@app.command(name="cancel")
def cancel_command(
    session: Annotated[str, typer.Argument(help="The session to cancel.")],
    task: Annotated[
        str | None, typer.Option(help="Cancel only this task (and what depends on it).")
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why; recorded in the events.")
    ] = "cancelled by the user",
) -> None:
    """Cancel a session or one of its tasks; running model calls and commands stop."""
    if remote.enabled():
        raise typer.Exit(remote.cancel(session, task=task, reason=reason))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            await keel.cancel(session, task, reason=reason)
            deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_S
            while asyncio.get_running_loop().time() < deadline:
                if task is None and (await keel.sessions.get(session)).status.is_final:
                    out.print(f"session {session} cancelled")
                    return
                if task is not None and (await keel.tasks.get(task)).status.is_final:
                    out.print(f"task {task} cancelled")
                    return
                await asyncio.sleep(0.05)
            if task is not None:
                out.print(
                    f"no process is running session {session}: task {task} will be cancelled "
                    f"when the session resumes (`keel resume {session}`)"
                )
                return
            out.print(f"no process is running session {session}: cancelling it here")
            finished = await keel.resume(session)
            out.print(f"session {session} {finished.status.value}")

    _run(main)


@app.command()
def approvals(
    session: Annotated[str | None, typer.Argument(help="Only this session's.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Answered ones too.")] = False,
) -> None:
    """Approvals waiting for an answer (who asks to do what, why, until when)."""
    if remote.enabled():
        raise typer.Exit(remote.approvals(session, every=every))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            found = await keel.approvals.list(session, pending_only=not every)
        if not found:
            out.print("no approvals waiting" if not every else "no approvals")
            return
        out.print(approvals_table(found))

    _run(main)


@app.command()
def approve(
    approval: Annotated[str, typer.Argument(help="The approval to answer.")],
    allow: Annotated[
        bool | None, typer.Option("--allow/--deny", help="Let the call run, or refuse it.")
    ] = None,
    remember: Annotated[
        bool, typer.Option(help="Allow the same call again in this session without asking.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Why; recorded in the events.")] = None,
) -> None:
    """Answer an approval: --allow or --deny (a session running elsewhere takes it in)."""
    if allow is None:
        raise typer.BadParameter("say --allow or --deny", param_hint="--allow/--deny")
    if remote.enabled():
        raise typer.Exit(remote.approve(approval, allow=allow, remember=remember, note=note))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            answered = await keel.answer(approval, allow=allow, remember=remember, note=note)
        out.print(f"approval {answered.id} {answered.status}")

    _run(main)


@app.command()
def delete(session: Annotated[str, typer.Argument(help="The session to delete.")]) -> None:
    """Delete a session that is not running: its records, worktrees, branches and refs."""
    if remote.enabled():
        raise typer.Exit(remote.delete(session))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            await keel.delete_session(session)
        out.print(f"session {session} deleted")

    _run(main)


@app.command()
def sessions(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List sessions, newest first."""
    if remote.enabled():
        raise typer.Exit(remote.sessions(limit=limit, as_json=as_json))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            found = await keel.sessions.list(limit)
        if as_json:
            for session in found:
                out.print_json(data=session.to_json(), indent=None)
            return
        if not found:
            out.print('no sessions yet: start one with `keel run "GOAL"` or `keel demo`')
            return
        out.print(sessions_table(found))

    _run(main)


@app.command()
def events(
    session: Annotated[str, typer.Argument(help="The session whose events to print.")],
    after: Annotated[int, typer.Option(help="Only events after this sequence number.", min=0)] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until it ends.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print a session's events in order; with --follow, as they are written."""
    if remote.enabled():
        raise typer.Exit(remote.events(session, after=after, follow=follow, as_json=as_json))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            current = await keel.sessions.get(session)

            def show(event: Any) -> None:
                if as_json:
                    print(json.dumps(event.to_json()), flush=True)
                else:
                    out.print(event_line(event))

            if follow and not current.status.is_final:
                async for event in keel.events.follow(session, after, until=kinds.SESSION_FINAL):
                    show(event)
            else:
                for event in await keel.events.read(session, after):
                    show(event)

    _run(main)


@app.command()
def tasks(session: Annotated[str, typer.Argument(help="The session whose tasks to show.")]) -> None:
    """Show a session's task tree."""
    if remote.enabled():
        raise typer.Exit(remote.tasks(session))

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            current = await keel.sessions.get(session)
            found = await keel.tasks.list(session)
        out.print(task_tree(current, build_tree(found)))

    _run(main)


@agents_app.command("validate")
def agents_validate(
    folder: Annotated[Path, typer.Argument(help="A folder of agent YAML files.")],
) -> None:
    """Check every agent file in FOLDER; list them, or name each bad file and field."""
    try:
        found = load_folder(folder)
    except KeelError as error:
        _report(error)
        raise typer.Exit(error.exit_code) from None
    out.print(agents_table(found))
    out.print(f"{len(found)} agent{'s' if len(found) != 1 else ''} valid in {folder}")


@agents_app.command("list")
def agents_list() -> None:
    """The registered agents, each at its latest version."""
    if remote.enabled():
        raise typer.Exit(remote.agents_list())

    async def main() -> None:
        async with await Keel.open(_Options.home) as keel:
            found = await keel.agents.latest()
        if not found:
            out.print("no agents registered yet; they are registered when a session starts")
            return
        out.print(agents_table(found))

    _run(main)


def main() -> None:
    app()
