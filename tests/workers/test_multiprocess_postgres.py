"""Scale-out on PostgreSQL with real processes: an API node (`keel serve --workers 0`) and
three `keel worker`s share one database; two workers are killed with SIGKILL mid-run and
every session still finishes, its events gap-free and no side effect run twice. A commit in
one process wakes a follower in another at once (LISTEN/NOTIFY), and a notification that is
lost loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel import Keel
from keel.cli.builtin_team import default_team
from keel.events import kinds
from keel.types import TraceEvent
from keel_server import KEEL, KeelServer

psycopg = pytest.importorskip("psycopg")
sql = psycopg.sql

SESSIONS = 50
WORKERS = 3
LEASE_S = 3
CAPACITY = 8
START_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 120.0
FINAL = {kinds.SESSION_COMPLETED, kinds.SESSION_FAILED, kinds.SESSION_CANCELLED}

CALC = "def add(a, b):\n    return a - b\n"
SIDE_EFFECT_TEST = textwrap.dedent(
    """\
    import os
    import time
    import unittest

    HERE = os.path.dirname(os.path.abspath(__file__))


    class SideEffect(unittest.TestCase):
        def test_appends_one_line_per_run(self):
            with open(os.path.join(HERE, "effects.log"), "a") as log:
                log.write(f"{os.getpid()}\\n")
            time.sleep(0.2)
    """
)


@dataclass
class Cluster:
    """An API node (`keel serve --workers 0`) and `keel worker`s on one PostgreSQL schema,
    sharing one KEEL_HOME (as processes on one machine do)."""

    root: Path
    database_url: str
    api: KeelServer = field(init=False)
    processes: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)
    """The workers, by name."""

    def __post_init__(self) -> None:
        env = {"KEEL_DATABASE_URL": self.database_url}
        self.api = KeelServer(self.root, "--workers", "0", env=env)

    @property
    def home(self) -> Path:
        return self.api.home

    @property
    def workspaces(self) -> Path:
        return self.api.workspace_root

    @property
    def url(self) -> str:
        return self.api.url

    def env(self) -> dict[str, str]:
        return self.api.process_env()

    def start(self, name: str, *args: str) -> subprocess.Popen[Any]:
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [*KEEL, *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def serve(self) -> str:
        """Start the API node; return the admin token it made."""
        self.api.start()
        return self.api.admin_token

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        self.api.stop()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
            for log in sorted(self.root.glob("*.log"))
        )


@pytest.fixture
def cluster(tmp_path: Path, new_postgres_url: Callable[..., str]) -> Iterator[Cluster]:
    running = Cluster(tmp_path, new_postgres_url(create=False))
    try:
        yield running
    finally:
        running.stop()


def _under_way(admin: Any, cluster: Cluster) -> Counter[int]:
    """How many sessions each worker process (by pid) holds whose run is under way (a few
    steps done, more to come)."""
    schema = cluster.database_url.rsplit("schema=", 1)[1]
    query = sql.SQL(
        "SELECT w.pid, count(*) FROM {workers} w JOIN {queue} q ON q.worker_id = w.id "
        "WHERE (SELECT count(*) FROM {events} e WHERE e.session_id = q.session_id "
        "AND e.type = %s) >= 3 GROUP BY w.pid"
    ).format(
        workers=sql.Identifier(schema, "workers"),
        queue=sql.Identifier(schema, "run_queue"),
        events=sql.Identifier(schema, "events"),
    )
    rows = admin.execute(query, (kinds.NODE_EXIT,)).fetchall()
    return Counter({int(pid): int(count) for pid, count in rows})


def _workspace(cluster: Cluster, number: int) -> Path:
    folder = cluster.workspaces / f"project-{number}"
    folder.mkdir(parents=True)
    (folder / "calc.py").write_text(CALC)
    (folder / "test_side_effect.py").write_text(SIDE_EFFECT_TEST)
    return folder


async def _sse(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    """The session's events as its SSE stream delivers them, to its final event; a dropped
    stream is resumed with Last-Event-ID, as browsers do."""
    events: list[dict[str, Any]] = []
    while True:
        headers = {"Accept": "text/event-stream"}
        if events:
            headers["Last-Event-ID"] = str(events[-1]["seq"])
        with contextlib.suppress(httpx.TransportError):
            async with client.stream(
                "GET", f"/v1/sessions/{session_id}/events", headers=headers, timeout=None
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:]))
                        if events[-1]["type"] in FINAL:
                            return events


async def _json_events(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        page = await client.get(
            f"/v1/sessions/{session_id}/events", params={"after": len(events), "limit": 5000}
        )
        assert page.status_code == 200, page.text
        batch = page.json()["events"]
        if not batch:
            return events
        events.extend(batch)


async def _deny_interrupted(client: httpx.AsyncClient, denied: set[str]) -> None:
    """A command a kill interrupted may have taken effect: the session asks a person before
    running it again. Deny, as a careful person would (the agent is told it did not run)."""
    while True:
        listed = await client.get("/v1/approvals")
        for approval in listed.json()["approvals"]:
            assert approval["kind"] == "interrupted", approval
            answer = {"allow": False, "note": "it may have run; do not run it twice"}
            response = await client.post(f"/v1/approvals/{approval['id']}", json=answer)
            if response.status_code == 200:
                denied.add(approval["id"])
        await asyncio.sleep(0.25)


def _assert_ran_at_most_once(events: list[dict[str, Any]], workspace: Path) -> None:
    """The session's one command ran at most once: the workspace saw one run for a recorded
    result, or at most one for a call a kill interrupted (which is then never run again)."""
    commands = {
        (e["taskId"], e["payload"]["callId"])
        for e in events
        if e["type"] == kinds.TOOL_CALL and e["payload"]["tool"] == "run_command"
    }
    assert len(commands) == 1, commands
    ran = [
        e
        for e in events
        if e["type"] == kinds.TOOL_RESULT
        and e["payload"]["tool"] == "run_command"
        and e["payload"]["output"].startswith("exit code")
    ]
    interrupted = [
        e
        for e in events
        if e["type"] == kinds.TOOL_INTERRUPTED and e["payload"]["tool"] == "run_command"
    ]
    assert len(ran) + len(interrupted) == 1, (ran, interrupted)
    log = workspace / "effects.log"
    runs = len(log.read_text().splitlines()) if log.exists() else 0
    assert len(ran) <= runs <= 1, (ran, interrupted, runs)


async def test_fifty_sessions_finish_exactly_once_when_two_of_three_workers_are_killed(
    cluster: Cluster, postgres_admin: Any
) -> None:
    started = time.monotonic()
    token = cluster.serve()
    for number in range(WORKERS):
        cluster.start(
            f"worker-{number}", "worker", "--lease", str(LEASE_S), "--capacity", str(CAPACITY)
        )
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=SESSIONS + 10)
    async with httpx.AsyncClient(
        base_url=cluster.url, headers=headers, timeout=30, limits=limits
    ) as client:

        async def create(number: int) -> tuple[str, Path]:
            folder = _workspace(cluster, number)
            body = {
                "goal": "Fix add in calc.py and test it",
                "config": {"workspace": str(folder), "scriptedLatencyMs": 100},
            }
            created = await client.post("/v1/sessions", json=body)
            assert created.status_code == 201, created.text
            return created.json()["id"], folder

        workspaces = dict(await asyncio.gather(*(create(n) for n in range(SESSIONS))))
        created_at = time.monotonic()

        streams = {sid: asyncio.create_task(_sse(client, sid)) for sid in workspaces}
        denied: set[str] = set()
        denier = asyncio.create_task(_deny_interrupted(client, denied))
        try:
            # Kill two workers once each holds sessions that are part-way through.
            victims = [cluster.processes[f"worker-{n}"] for n in range(WORKERS - 1)]
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                under_way = _under_way(postgres_admin, cluster)
                if all(under_way[victim.pid] >= 3 for victim in victims):
                    break
                assert time.monotonic() < deadline, f"workers never got busy:\n{cluster.logs()}"
                await asyncio.sleep(0.05)
            for number in range(WORKERS - 1):
                cluster.kill(f"worker-{number}")
            killed_at = time.monotonic()

            _, pending = await asyncio.wait(streams.values(), timeout=FINISH_TIMEOUT_S)
            assert not pending, f"{len(pending)} streams never ended:\n{cluster.logs()}"
            finished_at = time.monotonic()
        finally:
            unfinished = [denier, *(task for task in streams.values() if not task.done())]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if not denier.cancelled():
            denier.result()  # it failed: say why

        resumed = 0
        for session_id, stream in streams.items():
            session = (await client.get(f"/v1/sessions/{session_id}")).json()
            assert session["status"] == "done", (session, cluster.logs())
            events = await _json_events(client, session_id)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), session_id
            streamed = [(e["seq"], e["type"]) for e in stream.result()]  # to the final event
            assert streamed == [(e["seq"], e["type"]) for e in events][: len(streamed)]
            _assert_ran_at_most_once(events, workspaces[session_id])
            resumed += any(e["type"] == kinds.SESSION_RESUMED for e in events)
        assert resumed >= 2, "the kills should have interrupted sessions part-way through"
        print(
            f"\n{SESSIONS} sessions created {created_at - started:.1f} s after the start, two "
            f"workers killed {killed_at - created_at:.1f} s later, all done "
            f"{finished_at - killed_at:.1f} s after that; {resumed} resumed, {len(denied)} "
            "interrupted tool calls denied"
        )


APPENDER = textwrap.dedent(
    """\
    import asyncio
    import sys

    from keel.events import EventLog, NewEvent
    from keel.store import open_engine


    async def main(url: str, session_id: str) -> None:
        engine = await open_engine(url)
        log = EventLog(engine)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            ping = NewEvent("test.ping", "appender", {"n": int(line)})
            await log.append(session_id, "r_appender", [ping])
            print("appended", flush=True)
        await engine.close()


    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)
POLL_S = 5.0
"""The followers below poll this seldom: only a notification can wake them sooner."""


@dataclass
class Follower:
    """Follows a session in this process, noting when each event arrived."""

    keel: Keel
    session_id: str
    arrived: list[tuple[TraceEvent, float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for event in self.keel.events.follow(
            self.session_id, poll_interval=POLL_S, until=FINAL
        ):
            self.arrived.append((event, time.time()))

    async def wait_for(self, count: int, within: float) -> float:
        """Wait until `count` events have arrived; return how long that took."""
        began = time.monotonic()
        while len(self.arrived) < count:
            assert time.monotonic() - began < within, f"only {len(self.arrived)} events"
            await asyncio.sleep(0.005)
        return time.monotonic() - began

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@contextlib.asynccontextmanager
async def following(keel: Keel, session_id: str) -> AsyncIterator[Follower]:
    follower = Follower(keel, session_id)
    follower.start()
    try:
        yield follower
    finally:
        await follower.stop()


async def test_events_a_worker_process_commits_wake_a_follower_in_another_process_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with await Keel.open(tmp_path / "here", database_url=cluster.database_url) as keel:
        team = await keel.agents.register(default_team())
        session = await keel.create_session(
            "Fix add in calc.py and test it",
            team,
            config={"workspace": str(_workspace(cluster, 0)), "scriptedLatencyMs": 50},
        )
        cluster.home.mkdir(parents=True)
        cluster.start("worker", "worker", "--lease", str(LEASE_S))
        async with following(keel, session.id) as follower:
            await follower.wait_for(1, within=2)  # session.created, read at the start
            await keel.submit(session.id)
            assert follower.task is not None
            await asyncio.wait_for(follower.task, FINISH_TIMEOUT_S)
        lags = [arrived - event.timestamp.timestamp() for event, arrived in follower.arrived[1:]]
        seqs = [event.seq for event, _ in follower.arrived]
        assert seqs == list(range(1, len(seqs) + 1))
        assert follower.arrived[-1][0].type == kinds.SESSION_COMPLETED
        assert len(lags) > 50
        assert max(lags) < 1.0, sorted(lags)[-5:]  # polling alone: up to 5 s
        print(
            f"\n{len(lags)} events from the worker process reached the follower "
            f"{statistics.median(lags) * 1000:.1f} ms (median) / {max(lags) * 1000:.1f} ms "
            "(max) after they were written"
        )


async def test_a_notification_lost_with_the_listening_connection_loses_no_event(
    cluster: Cluster, tmp_path: Path, postgres_admin: Any
) -> None:
    listener = f"keel-test-{uuid.uuid4().hex[:10]}"
    url = f"{cluster.database_url}&application_name={listener}"
    async with await Keel.open(tmp_path / "here", database_url=url) as keel:
        echo = {"name": "echo", "role": "worker", "model": "scripted:echo"}
        session = await keel.create_session("Listen", [echo])
        appender = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            APPENDER,
            cluster.database_url,
            session.id,
            env=cluster.env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert appender.stdin is not None
        assert appender.stdout is not None

        async def append(n: int) -> None:
            """Another process appends an event (and says so once it has committed)."""
            assert appender.stdin is not None
            assert appender.stdout is not None
            appender.stdin.write(f"{n}\n".encode())
            await appender.stdin.drain()
            assert (await appender.stdout.readline()).strip() == b"appended"

        try:
            async with following(keel, session.id) as follower:
                await follower.wait_for(1, within=2)  # session.created, read at the start
                await append(1)
                assert await follower.wait_for(2, within=POLL_S) < 1.0

                killed = postgres_admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (f"{listener}:signals",),
                ).fetchall()
                assert killed == [(True,)]
                await append(2)  # signalled while nobody here listens
                # Found when the listener is back and tells its subscribers to look.
                assert await follower.wait_for(3, within=POLL_S) < POLL_S - 1  # not by polling

                await append(3)  # listening again
                assert await follower.wait_for(4, within=POLL_S) < 1.0
            appender.stdin.close()
            assert await asyncio.wait_for(appender.wait(), 30) == 0
        finally:
            if appender.returncode is None:
                appender.kill()
                await appender.wait()
        payloads = [event.payload.get("n") for event, _ in follower.arrived[1:]]
        assert payloads == [1, 2, 3]
        assert [e.seq for e, _ in follower.arrived] == [1, 2, 3, 4]
