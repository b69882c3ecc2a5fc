"""The Anthropic provider, driven through the official SDK against a local Messages server:
what it sends, how it assembles a streamed answer, and which failures it retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from wire import (
    Reply,
    StreamedCall,
    WireServer,
    anthropic_error,
    anthropic_error_body,
    anthropic_reply,
    sse,
)

from keel.errors import ModelConfigError, ModelRefused, ModelUnavailable
from keel.models import (
    Message,
    ModelSettings,
    ProviderSettings,
    RetryingModel,
    ToolCall,
    ToolSpec,
    Usage,
    resolve_model,
)
from keel.models.anthropic import (
    BASE_URL_VARIABLES,
    KEY_VARIABLES,
    MAX_TOKENS,
    AnthropicModel,
    create,
)

SETTINGS = ModelSettings(timeout_s=5.0)
QUESTION = [Message(role="user", content="Hello?")]


@pytest.fixture
async def server() -> AsyncIterator[WireServer]:
    async with WireServer() as running:
        yield running


@pytest.fixture(autouse=True)
def anthropic_environment(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*KEY_VARIABLES, *BASE_URL_VARIABLES, "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("KEEL_ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("KEEL_ANTHROPIC_BASE_URL", server.url)


def model(settings: ModelSettings = SETTINGS) -> AnthropicModel:
    return create("claude-test", settings)


async def test_text_streams_to_the_delta_sink_and_usage_comes_from_start_and_delta(
    server: WireServer,
) -> None:
    server.reply(anthropic_reply("Hel", "lo, ", "world", usage=(31, 4)))
    deltas: list[str] = []

    response = await model().complete(QUESTION, on_delta=deltas.append)

    assert deltas == ["Hel", "lo, ", "world"]
    assert response.message == Message(role="assistant", content="Hello, world")
    assert response.usage == Usage(input_tokens=31, output_tokens=4)
    assert response.model == "anthropic:claude-test"
    assert response.finish_reason == "end_turn"


async def test_cached_prompt_tokens_count_as_input(server: WireServer) -> None:
    server.reply(anthropic_reply("Hi.", usage=(10, 3), cached=900))

    response = await model().complete(QUESTION)

    assert response.usage == Usage(input_tokens=910, output_tokens=3)


async def test_the_conversation_and_tools_are_sent_as_messages(server: WireServer) -> None:
    server.reply(anthropic_reply("Done."))
    calls = [
        ToolCall(id="toolu_a", name="read_file", arguments={"path": "a.md"}),
        ToolCall(id="toolu_b", name="read_file", arguments={"path": "b.md"}),
    ]
    conversation = [
        Message(role="system", content="Be brief."),
        Message(role="system", content="Answer in English."),
        Message(role="user", content="Compare a.md and b.md."),
        Message(role="assistant", content="Reading both.", tool_calls=calls),
        Message(role="tool", content="# A", tool_call_id="toolu_a"),
        Message(role="tool", content="", tool_call_id="toolu_b"),
        Message(role="assistant", content="b.md is empty."),
        Message(role="user", content="Thanks."),
    ]
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    tool = ToolSpec(name="read_file", description="Read a file.", parameters=schema)

    await model().complete(conversation, [tool])

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["authorization"] == "Bearer sk-ant-test"
    assert request.headers["anthropic-version"]
    assert request.body["model"] == "claude-test"
    assert request.body["max_tokens"] == MAX_TOKENS == 4096
    assert request.body["stream"] is True
    assert request.body["system"] == "Be brief.\n\nAnswer in English."
    assert request.body["messages"] == [
        {"role": "user", "content": "Compare a.md and b.md."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading both."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "read_file",
                    "input": {"path": "a.md"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "read_file",
                    "input": {"path": "b.md"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "# A"},
                {"type": "tool_result", "tool_use_id": "toolu_b"},
            ],
        },
        {"role": "assistant", "content": "b.md is empty."},
        {"role": "user", "content": "Thanks."},
    ]
    assert request.body["tools"] == [
        {"name": "read_file", "description": "Read a file.", "input_schema": schema}
    ]


async def test_no_system_text_and_no_tools_send_neither_field(server: WireServer) -> None:
    server.reply(anthropic_reply("Hi."))

    await model().complete(QUESTION)

    assert "system" not in server.requests[0].body
    assert "tools" not in server.requests[0].body


async def test_a_tool_call_is_assembled_from_input_json_pieces(server: WireServer) -> None:
    pieces = ['{"pa', 'th": "REA', 'DME.md"}']
    server.reply(anthropic_reply("Reading.", calls=[StreamedCall("toolu_1", "read_file", pieces)]))

    response = await model().complete(QUESTION)

    assert response.message.content == "Reading."
    assert response.message.tool_calls == [
        ToolCall(id="toolu_1", name="read_file", arguments={"path": "README.md"})
    ]
    assert response.finish_reason == "tool_use"


async def test_two_tool_calls_come_back_in_block_order(server: WireServer) -> None:
    calls = [
        StreamedCall("toolu_a", "add", ['{"a": 1,', ' "b": 4}']),
        StreamedCall("toolu_b", "mul", ['{"a": 2', ', "b": 3}']),
    ]
    server.reply(anthropic_reply(calls=calls))

    response = await model().complete(QUESTION)

    assert response.message.content == ""
    assert response.message.tool_calls == [
        ToolCall(id="toolu_a", name="add", arguments={"a": 1, "b": 4}),
        ToolCall(id="toolu_b", name="mul", arguments={"a": 2, "b": 3}),
    ]


async def test_a_call_without_input_has_empty_arguments(server: WireServer) -> None:
    server.reply(anthropic_reply(calls=[StreamedCall("toolu_1", "list_files", [])]))

    response = await model().complete(QUESTION)

    assert response.message.tool_calls == [ToolCall(id="toolu_1", name="list_files")]


@pytest.mark.parametrize("text", ['{"path": "READ', "[1, 2]", "not json"])
async def test_input_that_is_not_a_json_object_is_kept_as_invalid_arguments(
    server: WireServer, text: str
) -> None:
    server.reply(anthropic_reply(calls=[StreamedCall("toolu_1", "read_file", [text])]))

    response = await model().complete(QUESTION)

    [call] = response.message.tool_calls
    assert (call.arguments, call.invalid_arguments) == ({}, text)


async def test_a_rate_limit_is_retried_after_the_servers_delay(server: WireServer) -> None:
    server.reply(
        anthropic_error(429, "rate_limit_error", "Slow down", headers={"retry-after": "0"}),
        anthropic_reply("Second time lucky."),
    )
    retrying = resolve_model("anthropic:claude-test", ModelSettings(timeout_s=5.0, max_attempts=2))

    response = await retrying.complete(QUESTION)

    assert response.message.content == "Second time lucky."
    assert len(server.requests) == 2


async def test_an_overloaded_server_carries_its_retry_after(server: WireServer) -> None:
    server.reply(
        anthropic_error(529, "overloaded_error", "Overloaded", headers={"retry-after": "3"})
    )

    with pytest.raises(ModelUnavailable, match=r"HTTP 529\): Overloaded") as raised:
        await model().complete(QUESTION)

    assert raised.value.retry_after == 3.0


@pytest.mark.parametrize(("status", "kind"), [(500, "api_error"), (529, "overloaded_error")])
async def test_server_errors_are_retried_until_the_attempts_run_out(
    server: WireServer, status: int, kind: str
) -> None:
    server.reply(*[anthropic_error(status, kind, "Try again later")] * 3)
    retrying = RetryingModel(model(), max_attempts=3, base_delay_s=0.0)

    with pytest.raises(ModelUnavailable, match=rf"HTTP {status}.*gave up after 3 attempts"):
        await retrying.complete(QUESTION)

    assert len(server.requests) == 3


async def test_an_error_event_inside_the_stream_is_retryable(server: WireServer) -> None:
    started = anthropic_reply("Hal", "f").events[:4]
    overloaded = sse(anthropic_error_body("overloaded_error", "Overloaded"), event="error")
    server.reply(Reply(events=[*started, overloaded]))

    with pytest.raises(ModelUnavailable, match="failed while answering: Overloaded"):
        await model().complete(QUESTION)


@pytest.mark.parametrize("events", [0, 5], ids=["before-answering", "mid-stream"])
async def test_a_dropped_connection_is_retryable(server: WireServer, events: int) -> None:
    server.reply(Reply(events=anthropic_reply("Hal", "f").events[:events], drop=True))

    with pytest.raises(ModelUnavailable, match="the connection failed"):
        await model().complete(QUESTION)


async def test_a_stream_cut_short_is_retryable(server: WireServer) -> None:
    server.reply(Reply(events=anthropic_reply("Hal", "f").events[:-1]))

    with pytest.raises(ModelUnavailable, match="no message_stop"):
        await model().complete(QUESTION)


async def test_a_server_slower_than_the_timeout_is_retryable(server: WireServer) -> None:
    server.reply(Reply(stall_s=5.0, body={}))

    with pytest.raises(ModelUnavailable, match="timed out"):
        await model(ModelSettings(timeout_s=0.1)).complete(QUESTION)


@pytest.mark.parametrize(
    ("status", "kind", "hint"),
    [
        (401, "authentication_error", "check the API key"),
        (404, "not_found_error", "check the model name"),
        (400, "invalid_request_error", ""),
    ],
)
async def test_a_client_error_is_refused_without_a_retry(
    server: WireServer, status: int, kind: str, hint: str
) -> None:
    server.reply(anthropic_error(status, kind, "invalid x-api-key"))
    retrying = resolve_model("anthropic:claude-test", SETTINGS)

    with pytest.raises(ModelRefused) as raised:
        await retrying.complete(QUESTION)

    message = str(raised.value)
    assert f"anthropic model 'claude-test' at {server.url}" in message
    assert f"HTTP {status}" in message
    assert "invalid x-api-key" in message
    assert hint in message
    assert len(server.requests) == 1


def test_a_missing_key_names_the_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_ANTHROPIC_API_KEY")

    with pytest.raises(ModelConfigError, match="set KEEL_ANTHROPIC_API_KEY or ANTHROPIC_API_KEY"):
        resolve_model("anthropic:claude-test", SETTINGS)


async def test_the_key_comes_from_the_variable_the_session_names(
    server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ModelSettings(providers={"anthropic": ProviderSettings(api_key_env="TEAM_KEY")})
    with pytest.raises(ModelConfigError, match=r"set TEAM_KEY$"):
        model(settings)
    monkeypatch.setenv("TEAM_KEY", "sk-ant-team")
    server.reply(anthropic_reply("Hi."))

    await model(settings).complete(QUESTION)

    assert server.requests[0].headers["authorization"] == "Bearer sk-ant-team"


async def test_the_base_url_can_come_from_anthropic_base_url(
    server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_ANTHROPIC_BASE_URL")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"{server.url}/gateway")
    server.reply(anthropic_reply("Hi."))

    await model().complete(QUESTION)

    assert server.requests[0].path == "/gateway/v1/messages"


async def test_the_sessions_base_url_wins_over_the_environment(server: WireServer) -> None:
    provider = ProviderSettings(base_url=f"{server.url}/session")
    server.reply(anthropic_reply("Hi."))

    await model(ModelSettings(providers={"anthropic": provider})).complete(QUESTION)

    assert server.requests[0].path == "/session/v1/messages"
