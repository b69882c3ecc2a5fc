"""The server side of `sse_fanout.py`: the app `keel serve` serves, run by uvicorn, with a
bench-only route that starts a writer inside this process.

The writer appends `rate` events per second to one session through `keel.events.append`,
as an embedded worker appends its events: each `append` is one committed transaction
holding the events due at a ~1 ms tick (when the server is busy the ticks come late and
hold more events). Each event carries the wall clock time taken just before its `append`.

Run by `sse_fanout.py`: `python bench/sse_server.py HOME PORT`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from keel import Keel
from keel.events import NewEvent
from keel.server import ServerOptions, create_app
from keel.server.state import ServerState
from turn_clock import percentile

TICK_S = 0.001


class Writer:
    """Appends `rate` events per second to one session, inside the server's process."""

    def __init__(self) -> None:
        self.appended = 0
        self.elapsed_s = 0.0
        self.commit_ms: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self, state: ServerState, session_id: str, rate: float, total: int) -> None:
        events, run_id = state.keel.events, state.keel.run_id
        start = time.perf_counter()
        while self.appended < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1) - self.appended
            if due > 0:
                sent = time.time_ns()
                batch = [
                    NewEvent("bench.tick", "bench", {"n": self.appended + i, "sentNs": sent})
                    for i in range(due)
                ]
                await events.append(session_id, run_id, batch)
                self.commit_ms.append((time.time_ns() - sent) / 1e6)
                self.appended += due
            await asyncio.sleep(TICK_S)
        self.elapsed_s = time.perf_counter() - start


def serve(home: Path, port: int) -> None:
    import uvicorn

    app = create_app(lambda: Keel.open(home), ServerOptions(workspace_root=home, workers=0))
    writer = Writer()

    @app.post("/bench/write", include_in_schema=False)
    async def write(session_id: str, rate: float, total: int) -> dict[str, int]:
        state: ServerState = app.state.keel
        writer.task = asyncio.create_task(writer.run(state, session_id, rate, total))
        return {"total": total}

    @app.get("/bench/write", include_in_schema=False)
    async def written() -> dict[str, Any]:
        if writer.task is not None and writer.task.done():
            writer.task.result()
        commits = writer.commit_ms
        return {
            "appended": writer.appended,
            "elapsed_s": writer.elapsed_s,
            "commits": len(commits),
            "commit_p50_ms": percentile(commits, 0.5) if commits else 0.0,
            "commit_p99_ms": percentile(commits, 0.99) if commits else 0.0,
        }

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
