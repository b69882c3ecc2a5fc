"""Running a session in the foreground: the live view while it runs, a summary after."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from keel.cli.tables import print_summary
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
    print_summary(console, session, view, time.perf_counter() - started, where=_data(keel))
    return session


def _data(keel: Keel) -> tuple[str, str]:
    """Where the session's records are: the home and the database."""
    return "data", f"{Path(keel.settings.home).resolve()}  ({keel.engine.url})"
