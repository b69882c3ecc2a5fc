"""Keel as an A2A agent, driven by the official A2A SDK's client over HTTP against a real
`keel serve` process: the card, tasks sent, streamed, read back, subscribed to (across a
restart), cancelled and answered; and another Keel whose agent's model is that server, as a
remote A2A agent, handing it the tasks its planner routes to that agent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, Client
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskNotFoundError,
    TaskState,
)
from a2a_fixtures import A2AServer, a2a_client, request

from keel.cli.builtin_team import default_team
from keel.cli.demo import DEMO_GOAL
from keel.errors import ModelConfigError, ModelRefused
from keel.models import Message, ModelSettings, ProviderSettings, check_model_string, resolve_model
from keel.orchestrator import Keel
from keel.types import AgentDefinition, SessionStatus
from keel_server import FINAL, long_goal

BUILT_IN_TEAM = {"coder", "planner", "reviewer", "tester"}
SLOW = {"config": {"scriptedLatencyMs": 150}}


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[A2AServer]:
    """A server with the built-in team, whose sessions may work anywhere under the tests'
    temporary directory."""
    root = tmp_path_factory.mktemp("keel")
    server = A2AServer(root, workspace_root=tmp_path_factory.getbasetemp())
    server.start()
    yield server
    server.stop()


def answer(task: Task) -> str:
    return "\n".join(get_artifact_text(artifact) for artifact in task.artifacts)


async def sent(
    client: Client,
    text: str,
    *,
    keel: dict[str, object] | None = None,
    task_id: str = "",
    context_id: str = "",
) -> Task:
    """Send a message and return the task the (blocking) answer holds."""
    sending = request(text, keel=keel, task_id=task_id, context_id=context_id)
    (response,) = [r async for r in client.send_message(sending)]
    assert response.HasField("task"), response
    return response.task


def state_of(response: StreamResponse) -> int | None:
    if response.HasField("task"):
        return response.task.status.state
    if response.HasField("status_update"):
        return response.status_update.status.state
    return None


async def test_the_card_is_public_and_lists_the_registered_agents_as_skills(
    keel: A2AServer,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for base in (keel.url, keel.a2a_url):
            card = await A2ACardResolver(http, base).get_agent_card()
            assert {skill.id for skill in card.skills} == BUILT_IN_TEAM
            assert {i.url for i in card.supported_interfaces} == {keel.a2a_url}
            assert {i.protocol_version for i in card.supported_interfaces} == {"1.0", "0.3"}
            assert card.capabilities.streaming
            assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
        planner = next(skill for skill in card.skills if skill.id == "planner")
        assert planner.description.startswith("planner: You plan software work.")


async def test_a_message_starts_a_session_whose_answer_completes_the_task(
    keel: A2AServer,
) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token, streaming=False) as client:
        task = await sent(client, "Sketch the parser, and write the notes")
        assert task.status.state == TaskState.TASK_STATE_COMPLETED

    session = keel.rest("GET", f"/v1/sessions/{task.id}")  # the task is the session
    assert session["status"] == "done"
    assert session["userId"] == "local"
    assert session["goal"] == "Sketch the parser, and write the notes"
    assert answer(task) == session["finalAnswer"]
    assert get_message_text(task.status.message) == session["finalAnswer"]
    assert get_message_text(task.history[0]) == session["goal"]


async def test_a_streamed_task_goes_from_submitted_through_working_to_completed(
    keel: A2AServer,
) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token) as client:
        stream = [r async for r in client.send_message(request("Map the modules, and test them"))]

    first = stream[0]
    assert first.HasField("task"), "a task's stream starts with the task"
    assert first.task.status.state == TaskState.TASK_STATE_SUBMITTED
    states = [state for state in map(state_of, stream) if state is not None]
    assert states == [
        TaskState.TASK_STATE_SUBMITTED,
        TaskState.TASK_STATE_WORKING,
        TaskState.TASK_STATE_COMPLETED,
    ]
    (artifact,) = [r.artifact_update for r in stream if r.HasField("artifact_update")]
    final = keel.rest("GET", f"/v1/sessions/{first.task.id}")["finalAnswer"]
    assert get_artifact_text(artifact.artifact) == final
    assert get_message_text(stream[-1].status_update.status.message) == final


async def test_a_running_task_is_read_back_and_subscribed_to_until_it_completes(
    keel: A2AServer,
) -> None:
    async with (
        a2a_client(keel.a2a_url, keel.admin_token, polling=True) as poller,
        a2a_client(keel.a2a_url, keel.admin_token) as client,
    ):
        started = await sent(poller, long_goal(3), keel=SLOW)  # returns at once
        running = await client.get_task(GetTaskRequest(id=started.id))
        assert running.status.state in (
            TaskState.TASK_STATE_SUBMITTED,
            TaskState.TASK_STATE_WORKING,
        )
        assert running.context_id == started.context_id

        events = [r async for r in client.subscribe(SubscribeToTaskRequest(id=started.id))]
        assert events[0].HasField("task")
        assert state_of(events[-1]) == TaskState.TASK_STATE_COMPLETED

        done = await client.get_task(GetTaskRequest(id=started.id))
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert answer(done) == keel.rest("GET", f"/v1/sessions/{started.id}")["finalAnswer"]

        listed = await client.list_tasks(ListTasksRequest(context_id=started.context_id))
        assert [task.id for task in listed.tasks] == [started.id]


async def test_cancelling_a_task_cancels_its_session(keel: A2AServer) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token, polling=True) as client:
        started = await sent(client, long_goal(8), keel=SLOW)
        cancelled = await client.cancel_task(CancelTaskRequest(id=started.id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED

        again = await client.get_task(GetTaskRequest(id=started.id))
        assert again.status.state == TaskState.TASK_STATE_CANCELED
    assert keel.rest("GET", f"/v1/sessions/{started.id}")["status"] == "cancelled"


async def test_a_message_to_a_working_task_reaches_its_agents_at_once(
    keel: A2AServer,
) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token, polling=True) as client:
        started = await sent(client, long_goal(8), keel=SLOW)
        more = "Mention the tests too"
        await sent(client, more, task_id=started.id, context_id=started.context_id)
    events = keel.rest("GET", f"/v1/sessions/{started.id}/events", params={"limit": 5000})["events"]
    types = [e["type"] for e in events]
    (message,) = [e for e in events if e["type"] == "session.message"]
    ends = [n for n, kind in enumerate(types) if kind.startswith("session.") and kind in FINAL]
    assert not ends or types.index("session.message") < ends[0]  # it came while work went on
    assert message["payload"]["text"] == more
    assert message["actor"] == "local"


async def test_a_task_waiting_for_an_approval_is_input_required_until_the_reply(
    keel: A2AServer, project: Callable[..., Path]
) -> None:
    repo = project(ask=True)
    config = {"config": {"workspace": str(repo)}}
    async with a2a_client(keel.a2a_url, keel.admin_token, streaming=False) as client:
        task = await sent(client, DEMO_GOAL, keel=config)
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        question = get_message_text(task.status.message)
        assert "run_command" in question
        assert "Reply 'allow' or 'deny'" in question

        unclear = await sent(client, "hmm", task_id=task.id, context_id=task.context_id)
        assert unclear.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert get_message_text(unclear.status.message).startswith("Please answer")

        for _ in range(5):  # the tester runs the tests before and after the fix
            if task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
                break
            task = await sent(client, "allow", task_id=task.id, context_id=task.context_id)
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert "The tests pass" in answer(task)
    answered = keel.rest("GET", "/v1/approvals", params={"session": task.id, "all": True})
    assert answered["approvals"]
    assert {a["status"] for a in answered["approvals"]} == {"allowed"}
    assert {a["answeredBy"] for a in answered["approvals"]} == {"local"}


async def test_calls_without_a_valid_token_are_refused(keel: A2AServer) -> None:
    for token in (None, "keel_not-a-token"):
        async with a2a_client(keel.a2a_url, token) as client:  # the card needs no token
            with pytest.raises(A2AClientError, match="401"):
                await sent(client, "Anything at all")


async def test_another_users_task_is_not_found(keel: A2AServer) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token, streaming=False) as client:
        task = await sent(client, "Count the modules")
    async with a2a_client(keel.a2a_url, keel.token("eve")) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=task.id))
        assert not (await client.list_tasks(ListTasksRequest())).tasks


async def test_an_a2a_0_3_client_reads_a_task_with_the_old_method_names(keel: A2AServer) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token, streaming=False) as client:
        task = await sent(client, "Name the modules")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task.id}}
    headers = {"Authorization": f"Bearer {keel.admin_token}"}  # no A2A-Version: 0.3
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        response = await http.post(keel.a2a_url, json=body)
    result = response.json()["result"]
    assert result["id"] == task.id
    assert result["status"]["state"] == "completed"


async def test_a_task_outlives_a_restart_and_a_subscriber_follows_it_from_the_log(
    keel: A2AServer,
) -> None:
    async with a2a_client(keel.a2a_url, keel.admin_token, polling=True) as client:
        started = await sent(client, long_goal(8), keel=SLOW)
    keel.stop()  # the session stays on the queue, at its last checkpoint
    keel.start()  # its worker resumes it; no executor here follows it
    async with a2a_client(keel.a2a_url, keel.admin_token) as client:
        events = [r async for r in client.subscribe(SubscribeToTaskRequest(id=started.id))]
        assert events[0].HasField("task")  # as it stood, from the store
        assert events[-1].HasField("status_update")  # then from the session's log
        assert state_of(events[-1]) == TaskState.TASK_STATE_COMPLETED
        done = await client.get_task(GetTaskRequest(id=started.id))
    assert done.context_id == started.context_id
    assert answer(done) == keel.rest("GET", f"/v1/sessions/{started.id}")["finalAnswer"]


async def test_an_agent_whose_model_is_a_remote_a2a_agent_gets_its_tasks_done_there(
    keel: A2AServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TEST_REMOTE_TOKEN", keel.token("delegator"))
    scout = AgentDefinition(
        name="scout",
        role="researcher",
        model=f"a2a:{keel.a2a_url}",
        instructions="You hand the work to the team at the other site.",
    )
    planner = next(agent for agent in default_team() if agent.role == "planner")
    providers = {"a2a": {"apiKeyEnv": "KEEL_TEST_REMOTE_TOKEN"}}
    async with await Keel.open(tmp_path / "delegating") as local:
        session = await local.create_session(
            "Survey the parser, and list its entry points",
            [planner, scout],
            config={"providers": providers},
        )
        session = await local.run(session.id)
        assert session.status is SessionStatus.DONE, session
        tasks = await local.tasks.list(session.id)
        calls = [
            event.payload
            for event in await local.events.read(session.id)
            if event.type == "model.call" and event.actor == "scout"
        ]

    handed_to = {task.goal: task.assigned_agent for task in tasks if task.parent_id}
    assert handed_to == {"Survey the parser": "scout", "List its entry points": "scout"}
    assert [call["model"] for call in calls] == [f"a2a:{keel.a2a_url}"] * 2

    async with a2a_client(keel.a2a_url, keel.token("delegator")) as remote:
        handed = (await remote.list_tasks(ListTasksRequest())).tasks
    assert len(handed) == 2  # the remote Keel's sessions, for the user the token names
    for task in handed:
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert answer(task) in (session.final_answer or "")
    goals = {get_message_text(task.history[0]).splitlines()[0] for task in handed}
    assert goals == {"Goal: Survey the parser", "Goal: List its entry points"}


async def test_a_remote_agent_that_refuses_the_token_is_a_refusal_that_names_the_token(
    keel: A2AServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TEST_WRONG_TOKEN", "keel_wrong")
    wrong = {"a2a": ProviderSettings(api_key_env="KEEL_TEST_WRONG_TOKEN")}
    model = resolve_model(f"a2a:{keel.a2a_url}", ModelSettings(providers=wrong))
    with pytest.raises(ModelRefused, match=r"HTTP 401\).*check its token"):
        await model.complete([Message(role="user", content="Count the modules")])

    unset = {"a2a": ProviderSettings(api_key_env="KEEL_TEST_UNSET_TOKEN")}
    with pytest.raises(ModelConfigError, match="set KEEL_TEST_UNSET_TOKEN"):
        resolve_model(f"a2a:{keel.a2a_url}", ModelSettings(providers=unset))
    assert "names no agent URL" in (check_model_string("a2a:other-host:8420") or "")
