"""Sessions run in this process, in the background: what a gateway uses when no worker pool
runs sessions for it. A run is an asyncio task; what is still running when the gateway
closes is cancelled, which leaves the session at its last checkpoint (`keel resume` or the
next start continues it)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging

from keel.errors import KeelError
from keel.orchestrator import Keel

logger = logging.getLogger(__name__)


class BackgroundRuns:
    def __init__(self, keel: Keel) -> None:
        self._keel = keel
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._errors: dict[str, str] = {}

    async def start(self, session_id: str) -> None:
        """Start running (or resuming) the session; return at once."""
        if session_id in self._tasks:
            return
        self._errors.pop(session_id, None)
        # A fresh context: the run outlives the request that started it and must not
        # carry that request's context variables along.
        task = asyncio.create_task(
            self._run(session_id), name=f"keel-run-{session_id}", context=contextvars.Context()
        )
        self._tasks[session_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(session_id, None))

    async def _run(self, session_id: str) -> None:
        try:
            await self._keel.run(session_id)
        except KeelError as error:
            self._errors[session_id] = str(error)
        except Exception as error:
            logger.exception("the run of session %s crashed", session_id)
            self._errors[session_id] = f"the run crashed: {error!r}"

    def error(self, session_id: str) -> str | None:
        """Why the session's last run here stopped before the session ended, if it did."""
        return self._errors.get(session_id)

    async def finished(self, session_id: str) -> None:
        """Wait until the session's run here is over: after the session's last event the
        run still stores the workspace's change (the `final.patch` artifact)."""
        task = self._tasks.get(session_id)
        if task is not None:
            await asyncio.wait({task})

    async def aclose(self) -> None:
        """Cancel the runs still going and wait for them to stop."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
