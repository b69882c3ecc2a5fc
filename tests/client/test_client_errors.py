"""The server's refusals arrive as Keel's own errors, with the server's message; a server
that does not answer is one error that names its address; the address and the token come
from the arguments, else from KEEL_URL and KEEL_TOKEN."""

from __future__ import annotations

import pytest

from keel.client import AsyncKeelClient, AuthError, Conflict, KeelClient, ServerUnavailable
from keel.errors import (
    ConfigError,
    IllegalTransition,
    SessionNotFound,
    SessionNotResumable,
    UnknownAgent,
    ValidationFailed,
)
from keel.guardrails.approvals import ApprovalNotFound
from keel_server import KeelServer, free_port


@pytest.fixture(scope="module")
def user_token(server: KeelServer) -> str:
    return server.token("bob")


def test_an_unknown_session_is_session_not_found(client: KeelClient) -> None:
    for ask in (
        lambda: client.get_session("s_nope"),
        lambda: client.events("s_nope"),
        lambda: client.tasks("s_nope"),
        lambda: list(client.stream_events("s_nope")),
        lambda: client.delete_session("s_nope"),
    ):
        with pytest.raises(SessionNotFound, match="no session 's_nope'"):
            ask()
    with pytest.raises(ApprovalNotFound, match="no approval 'a_nope'"):
        client.answer_approval("a_nope", allow=True)
    with pytest.raises(UnknownAgent, match="'nobody' is not registered"):
        client.get_agent("nobody")


def test_another_users_session_is_not_found_and_only_admins_change_the_policy(
    server: KeelServer, client: KeelClient, user_token: str
) -> None:
    session = client.create_session("Write the parser", config={"scriptedLatencyMs": 30})
    with KeelClient(server.url, user_token) as bob:
        with pytest.raises(SessionNotFound):
            bob.get_session(session.id)
        assert session.id not in [listed.id for listed in bob.list_sessions()]
        with pytest.raises(AuthError, match="only an admin token"):
            bob.put_policy("rules: []\n")
    client.wait(session.id)


def test_a_bad_token_and_no_token_are_auth_errors(server: KeelServer) -> None:
    with (
        KeelClient(server.url, "not-a-token") as stranger,
        pytest.raises(AuthError, match="unknown or was revoked"),
    ):
        stranger.list_sessions()
    with KeelClient(server.url, token="") as anonymous:
        with pytest.raises(AuthError, match="set KEEL_TOKEN"):
            anonymous.list_sessions()
        assert anonymous.health().status == "ok"


def test_a_bad_body_is_validation_failed_with_the_servers_fields(client: KeelClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.create_session("", budget={"tokensLimit": -1})
    fields = [field for field, _ in caught.value.problems]
    assert fields == ["body.goal", "body.budget.tokensLimit"]
    assert str(caught.value).startswith("the request is invalid: body.goal:")
    with pytest.raises(ValidationFailed, match="give either a goal"):
        client.create_session()


def test_an_ended_session_refuses_resume_and_cancel(client: KeelClient) -> None:
    session = client.wait(client.create_session("Write the parser").id)
    with pytest.raises(SessionNotResumable, match="has already ended"):
        client.resume(session.id)
    with pytest.raises(Conflict, match="has already ended") as caught:
        client.cancel(session.id)
    assert isinstance(caught.value, IllegalTransition)
    with pytest.raises(SessionNotResumable):
        client.send_message(session.id, "one more thing")


async def test_the_async_client_raises_the_same_errors(server: KeelServer) -> None:
    async with AsyncKeelClient(server.url, server.admin_token) as client:
        with pytest.raises(SessionNotFound):
            await client.get_session("s_nope")
        with pytest.raises(ValidationFailed):
            await client.create_session("")
    async with AsyncKeelClient(server.url, "not-a-token") as stranger:
        with pytest.raises(AuthError):
            await stranger.agents()


def test_a_server_that_does_not_answer_is_server_unavailable_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with KeelClient(url, "token") as client:
        with pytest.raises(ServerUnavailable, match=rf"the Keel server at {url} does not answer"):
            client.list_sessions()
        with pytest.raises(ServerUnavailable, match="does not answer"):
            list(client.stream_events("s_1"))
        assert not client.ready()


async def test_an_async_client_of_no_server_is_server_unavailable() -> None:
    async with AsyncKeelClient(f"http://127.0.0.1:{free_port()}", "token") as client:
        with pytest.raises(ServerUnavailable):
            await client.get_session("s_1")
        assert not await client.ready()


def test_arguments_win_over_keel_url_and_keel_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_URL", "http://keel.example:8420/")
    monkeypatch.setenv("KEEL_TOKEN", "from-env")
    with KeelClient() as client:
        assert (client.config.url, client.config.token) == ("http://keel.example:8420", "from-env")
    with KeelClient("https://other.example", "given") as client:
        assert (client.config.url, client.config.token) == ("https://other.example", "given")
    with KeelClient(token="") as client:
        assert client.config.token is None


def test_a_missing_or_bad_address_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_URL", raising=False)
    with pytest.raises(ConfigError, match="set KEEL_URL"):
        KeelClient()
    with pytest.raises(ConfigError, match="is not a server address"):
        KeelClient("localhost:8420")
