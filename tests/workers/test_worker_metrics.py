"""`keel worker --metrics-port` serves Prometheus metrics of the sessions it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx

from keel import Keel
from keel.events import kinds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_worker_serves_the_metrics_of_the_sessions_it_ran(
    home: Path, team: list[dict[str, Any]]
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "keel.cli", "--home", str(home), "worker",
        "--metrics-port", str(port), "--lease", "3",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with await Keel.open(home) as keel:
            session = await keel.create_session("Add a flag and test it", team)
            await keel.submit(session.id)
            async with asyncio.timeout(60):
                async for event in keel.events.follow(session.id, until=kinds.SESSION_FINAL):
                    assert event.type != kinds.SESSION_FAILED, event.payload
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async with asyncio.timeout(30):
                while True:
                    try:
                        scraped = await http.get("/metrics")
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                        continue
                    if 'keel_model_calls_total{model="scripted:planner"}' in scraped.text:
                        break
                    await asyncio.sleep(0.2)  # the worker's observer reads the log each second
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain")
            assert 'keel_sessions{status="done"} 1.0' in scraped.text
            assert "keel_step_duration_seconds_bucket" in scraped.text
            assert (await http.get("/other")).status_code == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            said, _ = await worker.communicate()
    assert worker.returncode == 0, said.decode()
    assert b"stopped: 1 claimed, 1 finished" in said
