"""Running a session in the foreground: the live view while it runs, a summary after."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from keel.cli.view import SessionView, event_line
from keel.events import kinds
from keel.orchestrator import Keel
from keel.types import Session


async def run_in_foreground(
    keel: Keel, session_id: str, console: Console, *, live: bool
) -> Session:
    """Run (or resume) `session_id` here, showing its events as they are written."""
    view = SessionView(session_id)
    seen = await keel.events.read(session_id)
    for event in seen:
        view.add(event)
    after = seen[-1].seq if seen else 0
    if not live:
        for event in seen:
            if event.type != kinds.MODEL_DELTA:
                console.print(event_line(event))
    started = time.perf_counter()
    runner = asyncio.create_task(keel.run(session_id))

    async def watch(display: Live | None) -> None:
        async for event in keel.events.follow(session_id, after, until=kinds.SESSION_FINAL):
            view.add(event)
            if display is not None:
                display.update(view.render())
            elif event.type != kinds.MODEL_DELTA:
                console.print(event_line(event))

    display = Live(view.render(), console=console, refresh_per_second=12) if live else None
    with display if display is not None else contextlib.nullcontext():
        watcher = asyncio.create_task(watch(display))
        try:
            session = await runner
        except BaseException:
            watcher.cancel()
            raise
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher, timeout=5)
    print_summary(keel, session, view, time.perf_counter() - started, console)
    return session


def print_summary(
    keel: Keel, session: Session, view: SessionView, seconds: float, console: Console
) -> None:
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
    table.add_row("data", f"{Path(keel.settings.home).resolve()}  ({keel.engine.url})")
    opened = view.workspace
    if opened:
        where = opened.get("path", "")
        branch = opened.get("branch")
        change = f"keel diff {session.id}" + (f"; branch {branch}" if branch else "")
        table.add_row("workspace", f"{where}  ({change})")
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
