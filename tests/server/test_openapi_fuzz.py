"""A bounded schemathesis run over the whole OpenAPI of the session API, against a real
`keel serve` process, with an admin token, on a store that holds real data: no answer is a
5xx, every answer has a status, a content type and a body that the OpenAPI document
declares, and input the document does not allow is refused with a 4xx.

Path parameters are drawn half the time from the seeded store (a finished session with a
patch artifact, a queued one with pending approvals, the built-in agents) and half the
time by schemathesis, so both the found and the not-found branches are fuzzed. No operation
is excluded. The server runs no worker (`--workers 0`): created sessions stay queued, which
keeps the run bounded and repeatable (running sessions over HTTP is the business of
`test_uvicorn_process.py`). The SSE variant of /events needs `Accept: text/event-stream`,
which schemathesis does not send, so it fuzzes the JSON pages.

The schema is the app's own document (`create_app(...).openapi()`, no I/O), loaded when the
module is; `schemathesis.pytest.from_fixture` cannot be used: it needs pytest's `_nodeid`,
which pytest 9.2 no longer has.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from keel import Keel
from keel.cli.builtin_team import default_team
from keel.guardrails.approvals import request_in
from keel.server import ServerOptions, create_app
from keel.server.tokens import create_token
from keel.store import Tx
from keel_server import KeelServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


async def _seed(home: Path, workspaces: Path) -> tuple[str, dict[str, list[str]]]:
    """A store as a server finds it after some use: agents, an admin token, a finished
    session on a workspace (with its patch), and a queued one with approvals waiting."""
    workspace = workspaces / "calc"
    workspace.mkdir(parents=True)
    (workspace / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    async with await Keel.open(home) as keel:
        team = await keel.agents.register(default_team())
        _, token = await create_token(keel.engine, "local", admin=True)
        done = await keel.create_session(
            "Fix the add function", team, user_id="local", config={"workspace": str(workspace)}
        )
        await keel.run(done.id)
        (artifact,) = await keel.artifacts.list(session_id=done.id)
        queued = await keel.create_session("Run the tests", team, user_id="local")
        await keel.submit(queued.id)

        def ask(tx: Tx) -> list[str]:
            return [
                request_in(
                    tx,
                    keel.run_id,
                    session_id=queued.id,
                    task_id="t_seeded",
                    agent="tester",
                    call_id=f"call_{n}",
                    tool="run_command",
                    arguments={"command": "make test"},
                    kind="guardrail",
                    risk=50,
                    reasons=["commands need a person"],
                    wait_s=3600,
                ).id
                for n in range(3)
            ]

        approvals = await keel.engine.write(ask)
    return token, {
        "session_id": [done.id, queued.id],
        "artifact_id": [artifact.id],
        "approval_id": approvals,
        "name": [agent.name for agent in team],
    }


set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "keel-tests-hypothesis")
"""Hypothesis keeps caches; not in the working tree."""

CONFIG = schemathesis.Config.from_dict(
    {
        # The A2A gateway's JSON-RPC body schema costs the coverage phase ~10 s of CPU to
        # build its cases, more than the rest of the API together: it is fuzzed only.
        "operations": [{"include-path": "/a2a", "phases": {"coverage": {"enabled": False}}}]
    }
)
schema = schemathesis.openapi.from_dict(
    create_app(Keel.open, ServerOptions(workspace_root=Path("."))).openapi(), config=CONFIG
)
SEEDED: dict[str, list[str]] = {}
"""Path parameter values that exist in the served store (filled by `seeded_server`)."""
ADMIN = "Bearer <the seeded admin token>"
"""Where the seeded admin token goes: schemathesis builds some cases when it collects the
test, before the store (and its token) exist."""


@schema.auth()
class AdminToken:
    """The admin token, on every case but those that leave it out or spoil it on purpose
    (schemathesis then expects a 401)."""

    def get(self, case: Any, context: Any) -> str:
        return ADMIN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    stored = {name: st.sampled_from(SEEDED[name]) for name in path_parameters if name in SEEDED}
    if not stored:
        return st.just(path_parameters)
    real = st.fixed_dictionaries(stored).map(lambda found: {**path_parameters, **found})
    return st.one_of(st.just(path_parameters), real)


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeelServer]:
    root = tmp_path_factory.mktemp("fuzz")
    server = KeelServer(root, "--workers", "0")
    server.admin_token, values = asyncio.run(_seed(server.home, server.workspace_root))
    SEEDED.update(values)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        SEEDED.clear()


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_every_input_as_its_openapi_says(
    case: Any, seeded_server: KeelServer
) -> None:
    if case.headers and case.headers.get("Authorization") == ADMIN:
        case.headers["Authorization"] = f"Bearer {seeded_server.admin_token}"
    checks = CHECKS
    if case.path == "/a2a":  # JSON-RPC answers a bad request in-band, with HTTP 200
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.call_and_validate(base_url=seeded_server.url, checks=checks, timeout=10)
