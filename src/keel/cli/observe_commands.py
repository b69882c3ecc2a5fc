"""`keel replay` and `keel export`: a session's record, read back from its event log.

`replay` draws the timeline in the terminal: when each thing happened (from the session's
first event), who did it, in which task (numbered and indented by the task tree), and what.
`export` writes the events, one JSON object per line, as `keel events --json` prints them, to
standard output or a file. Both only read. `add_observe_commands(app)` adds them to a Typer
app; user mistakes print one line (`error: ...`) and exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from keel.cli.command import home_of, out, run_command
from keel.cli.view import STATUS_STYLE, describe
from keel.errors import ConfigError
from keel.events import EventLog, kinds
from keel.orchestrator import Keel
from keel.types import Session, TraceEvent

PAGE = 1000
CHATTER = frozenset({kinds.MODEL_DELTA, kinds.CONTEXT_ASSEMBLED})
"""Left out of a replay unless `--all`: streamed text (the message follows) and context."""


class ExportFormat(StrEnum):
    JSONL = "jsonl"


async def _events(events: EventLog, session_id: str) -> AsyncIterator[TraceEvent]:
    after = 0
    while batch := await events.read(session_id, after, limit=PAGE):
        for event in batch:
            yield event
        after = batch[-1].seq


def _offset(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"+{hours}:{minutes:02}:{rest:06.3f}"
    if minutes:
        return f"+{minutes}:{rest:06.3f}"
    return f"+{rest:.3f}s"


def _style(event: TraceEvent) -> str:
    p = event.payload
    if event.type in (kinds.SESSION_FAILED, kinds.WORKSPACE_MERGE_CONFLICT) or (
        event.type == kinds.TASK_STATUS and p.get("to") == "failed"
    ):
        return "bold red"
    if (event.type == kinds.TOOL_RESULT and not p.get("ok")) or (
        event.type == kinds.GUARDRAIL_DECISION and p.get("verdict") == "deny"
    ):
        return "red"
    if event.type.startswith("approval.") or event.type in (kinds.HANDOFF, kinds.TASK_DELEGATED):
        return "magenta"
    if event.type in kinds.SESSION_FINAL:
        return "bold green"
    return "cyan"


class Timeline:
    """A session's events as rows: time from its first event, actor, task, type, summary.
    Tasks are numbered by the tree (1, 1.1, 1.2 ...) and indented by depth; the rows are
    drawn once every task is known (a workflow enters a node before it creates its task)."""

    def __init__(self, session: Session, *, everything: bool = False) -> None:
        self.session = session
        self.everything = everything
        self.table = Table("time", "actor", "task", "event", "what", box=None, pad_edge=False)
        self.table.columns[0].justify = "right"
        self._numbers: dict[str, str] = {}
        self._children: dict[str, int] = {}
        self._shown: list[TraceEvent] = []
        self._first: TraceEvent | None = None
        self._last: TraceEvent | None = None
        self._counts = {"events": 0, "model calls": 0, "tool calls": 0, "approvals": 0}
        self._tokens = 0

    def _number(self, event: TraceEvent) -> None:
        task_id = event.task_id
        if task_id is None or task_id in self._numbers:
            return
        parent = str(event.payload.get("parentId") or "")
        self._children[parent] = self._children.get(parent, 0) + 1
        prefix = f"{self._numbers[parent]}." if parent in self._numbers else ""
        self._numbers[task_id] = f"{prefix}{self._children[parent]}"

    def add(self, event: TraceEvent) -> None:
        self._first = self._first or event
        self._last = event
        self._counts["events"] += 1
        if event.type == kinds.MODEL_CALL:
            self._counts["model calls"] += 1
            p = event.payload
            self._tokens += int(p.get("inputTokens") or 0) + int(p.get("outputTokens") or 0)
        elif event.type == kinds.TOOL_RESULT:
            self._counts["tool calls"] += 1
        elif event.type == kinds.APPROVAL_REQUESTED:
            self._counts["approvals"] += 1
        elif event.type == kinds.TASK_CREATED:
            self._number(event)
        if self.everything or event.type not in CHATTER:
            self._shown.append(event)

    def _row(self, event: TraceEvent) -> None:
        assert self._first is not None
        offset = (event.timestamp - self._first.timestamp).total_seconds()
        number = self._numbers.get(event.task_id or "", event.task_id or "")
        depth = number.count(".") if event.task_id in self._numbers else 0
        self.table.add_row(
            Text(_offset(offset), "dim"),
            Text(event.actor, "dim" if event.actor == "keel" else "bold"),
            Text("  " * depth + number),
            Text(event.type, _style(event)),
            Text(describe(event)),
        )

    def render(self) -> Group:
        session = self.session
        style = STATUS_STYLE.get(session.status.value, ("", ""))[1]
        title = Text()
        title.append(f"session {session.id} · ", "bold")
        title.append(session.status.value, style)
        title.append(f" · {session.goal}")
        parts: list[Text | Table] = [title]
        if not session.status.is_final:
            parts.append(Text("the session has not ended: these are its events so far", "yellow"))
        for event in self._shown:
            self._row(event)
        parts.append(self.table)
        took = 0.0
        if self._first is not None and self._last is not None:
            took = (self._last.timestamp - self._first.timestamp).total_seconds()
        counts = " · ".join(f"{n} {what}" for what, n in self._counts.items())
        footer = f"{counts} · {self._tokens} tokens · {len(self._numbers)} tasks · {took:.3f} s"
        parts.append(Text(footer, "dim"))
        return Group(*parts)


def _write_lines(handle: IO[str], lines: list[str]) -> None:
    handle.write("".join(f"{line}\n" for line in lines))


async def _export(keel: Keel, session_id: str, handle: IO[str]) -> int:
    count, lines = 0, []
    async for event in _events(keel.events, session_id):
        lines.append(json.dumps(event.to_json()))
        if len(lines) >= PAGE:
            await asyncio.to_thread(_write_lines, handle, lines)
            count, lines = count + len(lines), []
    await asyncio.to_thread(_write_lines, handle, lines)
    return count + len(lines)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[IO[str]]:
    """A temporary file beside `path` that replaces it only when everything is written."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
        try:
            os.replace(temporary, path)
        except OSError as error:
            raise ConfigError(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def add_observe_commands(app: typer.Typer) -> None:
    """Add `replay` and `export` to `app`."""

    @app.command("replay")
    def replay_command(
        ctx: typer.Context,
        session: Annotated[str, typer.Argument(help="The session to replay.")],
        everything: Annotated[
            bool, typer.Option("--all", help="Also streamed model text and context assembly.")
        ] = False,
    ) -> None:
        """Show a session's timeline: when each thing happened, who did it, in which task."""

        async def main() -> None:
            async with await Keel.open(home_of(ctx)) as keel:
                timeline = Timeline(await keel.sessions.get(session), everything=everything)
                async for event in _events(keel.events, session):
                    timeline.add(event)
            out.print(timeline.render())

        run_command(main)

    @app.command("export")
    def export_command(
        ctx: typer.Context,
        session: Annotated[str, typer.Argument(help="The session whose events to write.")],
        form: Annotated[
            ExportFormat, typer.Option("--format", help="jsonl: one JSON object per line.")
        ] = ExportFormat.JSONL,
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", help="Write to this file (default: standard output)."),
        ] = None,
    ) -> None:
        """Write a session's events in order, one JSON object per line (as `keel events
        --json` prints them)."""

        async def main() -> None:
            async with await Keel.open(home_of(ctx)) as keel:
                await keel.sessions.get(session)  # an unknown session writes nothing
                if output is None:
                    await _export(keel, session, sys.stdout)
                    return
                with _replacing(output) as handle:
                    count = await _export(keel, session, handle)
            out.print(f"{count} events of session {session} written to {output}")

        run_command(main)
