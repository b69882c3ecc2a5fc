"""The session API served by a real uvicorn process (`keel serve`): a client that drops its
stream and comes back misses nothing and gets nothing twice; a server killed with SIGKILL
and restarted finishes the session it was running; one user never sees another's."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from keel_server import (
    FINAL,
    KeelServer,
    SseEvent,
    create_session,
    event_log,
    long_goal,
    read_sse,
    wait_for_status,
    wait_until_final,
)

SSE = {"Accept": "text/event-stream"}


def _stream_in_pieces(
    client: httpx.Client, session_id: str, *, resume_by: str, pieces: int, per_piece: int
) -> tuple[list[SseEvent], list[str]]:
    """Read the session's stream, dropping the connection after every `per_piece` events
    (`pieces` times) and coming back with `Last-Event-ID` or `?after=`; return every event
    received and the session's status at each disconnect."""
    received: list[SseEvent] = []
    statuses: list[str] = []
    while True:
        headers = dict(SSE)
        params: dict[str, int] = {}
        if received and resume_by == "header":
            headers["Last-Event-ID"] = str(received[-1].id)
        elif received:
            params["after"] = received[-1].id
        limit = per_piece if len(statuses) < pieces else None
        url = f"/v1/sessions/{session_id}/events"
        with client.stream("GET", url, headers=headers, params=params) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            batch = [e for e in read_sse(response, stop_after=limit) if e is not None]
        received.extend(batch)
        if received and received[-1].type in FINAL:
            return received, statuses
        statuses.append(client.get(f"/v1/sessions/{session_id}").json()["status"])
        _wait_for_events_after(client, session_id, received[-1].id if received else 0)


def _wait_for_events_after(client: httpx.Client, session_id: str, seq: int) -> None:
    """Wait until the log has moved on past `seq`, so the next connection must send events
    that were written while no one was connected."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = client.get(f"/v1/sessions/{session_id}/events", params={"after": seq, "limit": 1})
        if page.json()["lastSeq"] > seq + 2:
            return
        time.sleep(0.02)
    pytest.fail(f"session {session_id} wrote nothing after event {seq} within 30 s")


def _assert_exactly_the_log(received: list[SseEvent], log: list[dict[str, Any]]) -> None:
    assert [e.id for e in received] == list(range(1, len(log) + 1))
    assert [e.data for e in received] == log
    assert [e.type for e in received] == [e["type"] for e in log]


@pytest.mark.parametrize("resume_by", ["header", "query"])
def test_a_client_that_drops_its_stream_and_resumes_gets_every_event_once(
    server: KeelServer, resume_by: str
) -> None:
    client = server.client()
    session_id = create_session(client, long_goal(14), scriptedLatencyMs=60)

    received, statuses = _stream_in_pieces(
        client, session_id, resume_by=resume_by, pieces=3, per_piece=12
    )

    assert statuses == ["running"] * 3  # each disconnect came while the session ran
    assert received[-1].type == "session.completed"
    _assert_exactly_the_log(received, event_log(client, session_id))


def test_the_last_event_id_header_and_after_take_the_later_of_the_two(server: KeelServer) -> None:
    client = server.client()
    session_id = create_session(client, "Say hello")
    wait_until_final(client, session_id)
    url = f"/v1/sessions/{session_id}/events"

    headers = {**SSE, "Last-Event-ID": "5"}
    with client.stream("GET", url, headers=headers, params={"after": 3}) as response:
        ids = [e.id for e in read_sse(response) if e is not None]
    with client.stream("GET", url, headers={**SSE, "Last-Event-ID": "3"}, params={"after": 5}) as r:
        same = [e.id for e in read_sse(r) if e is not None]

    assert ids == same == list(range(6, len(event_log(client, session_id)) + 1))


def test_a_server_killed_mid_session_finishes_it_after_a_restart_and_the_stream_resumes(
    server: KeelServer,
) -> None:
    client = server.client()
    session_id = create_session(client, long_goal(10), scriptedLatencyMs=60)
    url = f"/v1/sessions/{session_id}/events"
    with client.stream("GET", url, headers=SSE) as response:
        before = []
        for event in read_sse(response):
            if event is not None:
                before.append(event)
            if len([e for e in before if e.type == "workflow.node.exit"]) >= 4:
                server.kill()  # while this stream and the session are live
                break
    with pytest.raises(httpx.TransportError):
        client.get("/healthz")
    assert before[-1].type not in FINAL

    server.start()  # the same home and port
    client = server.client()
    headers = {**SSE, "Last-Event-ID": str(before[-1].id)}
    with client.stream("GET", url, headers=headers) as response:
        after = [e for e in read_sse(response) if e is not None]
    session = wait_until_final(client, session_id)

    log = event_log(client, session_id)
    assert session["status"] == "done"
    _assert_exactly_the_log(before + after, log)
    types = [e["type"] for e in log]
    assert types.count("session.resumed") == 1
    assert types.count("session.completed") == 1
    exits = Counter(e["payload"]["node"] for e in log if e["type"] == "workflow.node.exit")
    assert set(exits.values()) == {1}  # no finished node ran again


def _requests(session_id: str, approval_id: str, artifact_id: str) -> list[tuple[str, str, Any]]:
    """Every request that names a session (or its approval or artifact)."""
    base = f"/v1/sessions/{session_id}"
    return [
        ("GET", base, None),
        ("GET", f"{base}/events", None),
        ("GET", f"{base}/tasks", None),
        ("POST", f"{base}/messages", {"text": "hello"}),
        ("POST", f"{base}/cancel", {}),
        ("POST", f"{base}/resume", None),
        ("GET", f"{base}/facts", None),
        ("GET", f"{base}/artifacts", None),
        ("GET", f"{base}/artifacts/{artifact_id}", None),
        ("GET", f"/v1/approvals?session={session_id}", None),
        ("GET", f"/v1/approvals/{approval_id}", None),
        ("POST", f"/v1/approvals/{approval_id}", {"allow": True}),
        ("DELETE", base, None),
    ]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_another_users_session_is_not_found_on_every_endpoint(
    start_server: Callable[..., KeelServer],
) -> None:
    server = start_server("--workers", "1", "--lease", "2")
    ask = "rules:\n  - {action: ask, tool: run_command, reason: commands need a person}\n"
    assert server.client().put("/v1/policy", json={"yaml": ask}).status_code == 200
    alice = server.client(server.token("alice"))
    bob = server.client(server.token("bob"))
    done_id = create_session(alice, "Say hello")
    waiting_id = create_session(alice, "Write code, run the tests")
    wait_until_final(alice, done_id)
    approval = _pending_approval(alice, waiting_id)
    artifact = "a_0000000000000000"

    for session_id in (done_id, waiting_id):
        for method, path, body in _requests(session_id, approval["id"], artifact):
            response = bob.request(method, path, json=body)
            nothing = bob.request(method, path.replace(session_id, "s_nosuchsession"), json=body)
            problem = _problem(response, 404)
            assert session_id not in response.text.replace(f"'{session_id}'", "")
            assert "Say hello" not in response.text
            assert "run the tests" not in response.text
            if approval["id"] not in path:  # "as if it did not exist"
                assert problem == {**_problem(nothing, 404), "detail": problem["detail"]}
        streamed = bob.get(f"/v1/sessions/{session_id}/events", headers=SSE)
        _problem(streamed, 404)

    assert bob.get("/v1/sessions").json() == {"sessions": []}
    assert bob.get("/v1/approvals").json() == {"approvals": []}
    assert bob.get("/v1/approvals", params={"all": True}).json() == {"approvals": []}
    # nothing bob tried changed anything: alice's session still waits for her answer
    assert [a["id"] for a in alice.get("/v1/approvals").json()["approvals"]] == [approval["id"]]
    assert {s["id"] for s in alice.get("/v1/sessions").json()["sessions"]} == {
        done_id,
        waiting_id,
    }
    admin = server.client()
    assert admin.get(f"/v1/sessions/{waiting_id}").json()["userId"] == "alice"
    assert alice.post(f"/v1/approvals/{approval['id']}", json={"allow": False}).status_code == 200


def test_only_an_admin_changes_the_registry_and_the_policy(server: KeelServer) -> None:
    alice = server.client(server.token("alice"))
    agents = server.client().get("/v1/agents").json()
    problem = _problem(alice.put("/v1/agents", json=agents), 403)
    assert "admin" in problem["detail"]
    _problem(alice.put("/v1/policy", json={"yaml": "rules: []\n"}), 403)
    one = agents["agents"][0]
    _problem(alice.post("/v1/sessions", json={"goal": "x", "agents": [one]}), 403)
    assert alice.get("/v1/policy").status_code == 200  # reading is for everyone
    assert server.client().put("/v1/policy", json={"yaml": "rules: []\n"}).status_code == 200


def test_a_request_without_a_valid_token_is_unauthorized_with_a_challenge(
    server: KeelServer,
) -> None:
    client = server.client("")
    wrong = [None, "Bearer", "Basic YWxpY2U6c2VjcmV0", "Bearer keel_not-a-token", "Bearer x"]
    for authorization in wrong:
        headers = {} if authorization is None else {"Authorization": authorization}
        for path in ("/v1/sessions", "/v1/agents", "/v1/approvals", "/v1/sessions/s_x/events"):
            response = client.get(path, headers=headers)
            problem = _problem(response, 401)
            assert response.headers["www-authenticate"] == 'Bearer realm="keel"'
            assert "token" in problem["detail"]
    assert client.get("/healthz").status_code == 200  # health needs no token


def _pending_approval(client: httpx.Client, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = client.get("/v1/approvals", params={"session": session_id}).json()["approvals"]
        if found:
            (approval,) = found
            return approval  # type: ignore[no-any-return]
        time.sleep(0.05)
    pytest.fail(f"session {session_id} asked for no approval within 30 s")


def test_a_session_waits_for_an_approval_given_over_http_then_finishes(
    start_server: Callable[..., KeelServer],
) -> None:
    server = start_server("--workers", "1", "--lease", "2")
    admin = server.client()
    ask = "rules:\n  - {action: ask, tool: run_command, reason: commands need a person}\n"
    assert admin.put("/v1/policy", json={"yaml": ask}).json() == {"yaml": ask}
    alice = server.client(server.token("alice"))
    session_id = create_session(alice, "Write code, run the tests")

    approval = _pending_approval(alice, session_id)
    assert approval["sessionId"] == session_id
    assert approval["status"] == "pending"
    assert any("commands need a person" in reason for reason in approval["reasons"])
    assert alice.get(f"/v1/sessions/{session_id}").json()["status"] == "running"
    answered = alice.post(f"/v1/approvals/{approval['id']}", json={"allow": True})
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "allowed"

    assert wait_until_final(alice, session_id)["status"] == "done"
    assert alice.get("/v1/approvals").json() == {"approvals": []}
    _problem(alice.post(f"/v1/approvals/{approval['id']}", json={"allow": False}), 409)
    results = [e["payload"] for e in event_log(alice, session_id) if e["type"] == "tool.result"]
    assert [r["tool"] for r in results if r["ok"]] == ["glob", "run_command"]


def test_cancel_over_http_stops_a_running_session(server: KeelServer) -> None:
    client = server.client()
    session_id = create_session(client, long_goal(20), scriptedLatencyMs=80)
    wait_for_status(client, session_id, "running".__eq__, 30)

    accepted = client.post(f"/v1/sessions/{session_id}/cancel", json={"reason": "enough"})

    assert accepted.status_code == 202, accepted.text
    session = wait_until_final(client, session_id)
    assert session["status"] == "cancelled"
    log = event_log(client, session_id)
    assert log[-1]["type"] == "session.cancelled"
    assert sum(1 for e in log if e["type"] == "task.status" and e["payload"]["to"] == "done") < 20
    _problem(client.post(f"/v1/sessions/{session_id}/cancel"), 409)


def test_a_follow_up_message_reaches_a_running_session_and_not_a_finished_one(
    server: KeelServer,
) -> None:
    client = server.client()
    session_id = create_session(client, long_goal(6), scriptedLatencyMs=60)
    wait_for_status(client, session_id, "running".__eq__, 30)

    sent = client.post(f"/v1/sessions/{session_id}/messages", json={"text": "also part 7"})

    assert sent.status_code == 201, sent.text
    assert sent.json() == {"sessionId": session_id, "number": 1}
    assert wait_until_final(client, session_id)["status"] == "done"
    messages = [e for e in event_log(client, session_id) if e["type"] == "session.message"]
    assert [m["payload"] for m in messages] == [{"text": "also part 7", "number": 1}]
    later_contexts = [
        e["payload"]["facts"]
        for e in event_log(client, session_id)
        if e["type"] == "context.assembled" and e["seq"] > messages[0]["seq"]
    ]
    assert any(f["key"] == "user.message.1" for facts in later_contexts for f in facts)
    late = client.post(f"/v1/sessions/{session_id}/messages", json={"text": "one more"})
    assert "has already ended" in _problem(late, 409)["detail"]


def test_a_session_on_a_workspace_offers_its_patch_for_download(server: KeelServer) -> None:
    workspace = server.workspace_root / "calc"
    workspace.mkdir()
    (workspace / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    client = server.client()
    session_id = create_session(client, "Fix the add function", workspace="calc")
    assert wait_until_final(client, session_id)["status"] == "done"

    (artifact,) = _artifacts(client, session_id)
    download = client.get(f"/v1/sessions/{session_id}/artifacts/{artifact['id']}")

    assert artifact["name"] == "final.patch"
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"
    assert 'filename="final.patch"' in download.headers["content-disposition"]
    digest = hashlib.sha256(download.content).hexdigest()
    assert download.headers["x-checksum-sha256"] == artifact["checksum"] == f"sha256:{digest}"
    assert "-    return a - b\n+    return a + b" in download.text
    other = create_session(client, "Say hello")
    _problem(client.get(f"/v1/sessions/{other}/artifacts/{artifact['id']}"), 404)
    outside = client.post("/v1/sessions", json={"goal": "x", "config": {"workspace": "/etc"}})
    assert "workspace root" in _problem(outside, 422)["detail"]


def _artifacts(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    """The session's artifacts, once there are any: the worker stores the patch just after
    the session's final event."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = client.get(f"/v1/sessions/{session_id}/artifacts").json()[
            "artifacts"
        ]
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"session {session_id} stored no artifact within 30 s")
