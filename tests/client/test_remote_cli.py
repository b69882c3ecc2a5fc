"""With KEEL_URL and KEEL_TOKEN set, the `keel` commands work against the server: `run`
creates the session there and follows it to its end, the reading commands read it, approvals
are answered there; the local store is never opened. A server that does not answer is one
line and exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from keel.cli.main import app
from keel.client import KeelClient
from keel.errors import SessionNotFound
from keel_server import KeelServer, free_port, long_goal

runner = CliRunner()
Keel = Callable[..., Result]


@pytest.fixture
def keel(server: KeelServer, tmp_path: Path) -> Iterator[Keel]:
    """Runs `keel ARGS` against the server (KEEL_HOME points where nothing may appear)."""
    unused_home = tmp_path / "local-home"

    def invoke(*args: str, url: str | None = None, token: str | None = None) -> Result:
        env = {
            "KEEL_URL": url or server.url,
            "KEEL_TOKEN": server.admin_token if token is None else token,
            "KEEL_HOME": str(unused_home),
            "COLUMNS": "200",
        }
        return runner.invoke(app, list(args), env=env)

    yield invoke
    assert not unused_home.exists()


def test_run_creates_the_session_on_the_server_and_follows_it_to_the_end(
    keel: Keel, server: KeelServer, client: KeelClient
) -> None:
    result = keel("run", long_goal(2), "--plain", "--scripted-delay", "30")
    assert result.exit_code == 0, result.output
    assert "session.created" in result.stdout
    assert "plan.created" in result.stdout
    assert "session.completed" in result.stdout
    assert "model.delta" not in result.stdout
    assert "tasks      4 done" in result.stdout
    assert f"server     {server.url}" in result.stdout
    (session,) = [s for s in client.list_sessions() if s.goal == long_goal(2)]
    assert session.status.value == "done"
    assert (session.config or {})["scriptedLatencyMs"] == 30


def test_sessions_events_tasks_and_agents_read_the_server(keel: Keel, client: KeelClient) -> None:
    session = client.wait(client.create_session("Write the parser and test it").id)

    result = keel("sessions", "--json")
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert session.id in [item["id"] for item in listed]

    result = keel("events", session.id, "--json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "session.completed"
    assert keel("events", session.id, "--after", str(len(events) - 1)).stdout.count("\n") == 1
    assert keel("events", session.id, "-f", "--json").stdout.count("\n") == len(events)

    result = keel("tasks", session.id)
    assert result.exit_code == 0, result.output
    assert "Write the parser" in result.stdout
    assert "[tester]" in result.stdout

    result = keel("agents", "list")
    assert "scripted:planner" in result.stdout


def test_events_follow_streams_a_running_session_to_its_end(keel: Keel, client: KeelClient) -> None:
    session = client.create_session(long_goal(6), config={"scriptedLatencyMs": 30})
    result = keel("events", session.id, "--follow", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "session.completed"


def test_approvals_are_listed_and_answered_on_the_server(
    keel: Keel, server: KeelServer, client: KeelClient
) -> None:
    policy = server.root / "ask-before-commands.yaml"
    policy.write_text("rules:\n  - {action: ask, tool: run_command, reason: ask first}\n")
    session = client.create_session("Test it", config={"policy": str(policy)})  # 3 testers
    for event in client.stream_events(session.id):
        if event.type == "approval.requested":
            break
    (waiting,) = client.approvals(session.id)

    result = keel("approvals")
    assert result.exit_code == 0, result.output
    assert waiting.id in result.stdout
    assert "ask first" in result.stdout
    result = keel("approve", waiting.id, "--allow", "--remember", "--note", "fine")
    assert result.exit_code == 0, result.output
    assert f"approval {waiting.id} allowed" in result.stdout
    assert client.wait(session.id).status.value == "done"
    assert "no approvals waiting" in keel("approvals", session.id).stdout


def test_ended_sessions_refuse_resume_and_cancel_and_can_be_deleted(
    keel: Keel, client: KeelClient
) -> None:
    session = client.wait(client.create_session("Write the parser").id)
    for command in ("resume", "cancel"):
        result = keel(command, session.id)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: session {session.id} has already ended")
    result = keel("delete", session.id)
    assert result.exit_code == 0, result.output
    with pytest.raises(SessionNotFound):
        client.get_session(session.id)


def test_cancel_stops_a_running_session(keel: Keel, client: KeelClient) -> None:
    session = client.create_session(long_goal(20), config={"scriptedLatencyMs": 100})
    result = keel("cancel", session.id, "--reason", "changed my mind")
    assert result.exit_code == 0, result.output
    assert client.wait(session.id).status.value == "cancelled"


def test_agent_definitions_need_an_admin_token(
    keel: Keel, server: KeelServer, client: KeelClient
) -> None:
    folder = Path(__file__).parents[2] / "examples" / "openai-team"
    result = keel("run", "Write the parser", "--agents", str(folder), token=server.token("eve"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: only an admin token may register agent definitions")


def test_a_server_that_does_not_answer_is_one_error_line_and_exit_2(keel: Keel) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("sessions",), ("run", "Write the parser", "--plain"), ("agents", "list")):
        result = keel(*args, url=url)
        assert result.exit_code == 2
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: the Keel server at {url} does not answer")
