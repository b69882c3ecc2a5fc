"""The OpenAI provider, driven through the official SDK against a local Chat Completions
server: what it sends, how it assembles a streamed answer, and which failures it retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from wire import (
    Reply,
    StreamedCall,
    WireServer,
    openai_chunk,
    openai_error,
    openai_reply,
    openai_stream,
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
from keel.models.openai import BASE_URL_VARIABLES, KEY_VARIABLES, OpenAIModel, create

SETTINGS = ModelSettings(timeout_s=5.0)
QUESTION = [Message(role="user", content="Hello?")]


@pytest.fixture
async def server() -> AsyncIterator[WireServer]:
    async with WireServer() as running:
        yield running


@pytest.fixture(autouse=True)
def openai_environment(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*KEY_VARIABLES, *BASE_URL_VARIABLES):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("KEEL_OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("KEEL_OPENAI_BASE_URL", f"{server.url}/v1")


def model(settings: ModelSettings = SETTINGS) -> OpenAIModel:
    return create("gpt-test", settings)


async def test_text_streams_to_the_delta_sink_and_usage_comes_from_the_last_chunk(
    server: WireServer,
) -> None:
    server.reply(openai_reply("Hel", "lo, ", "world", usage=(31, 4)))
    deltas: list[str] = []

    response = await model().complete(QUESTION, on_delta=deltas.append)

    assert deltas == ["Hel", "lo, ", "world"]
    assert response.message == Message(role="assistant", content="Hello, world")
    assert response.usage == Usage(input_tokens=31, output_tokens=4)
    assert response.model == "openai:gpt-test"
    assert response.finish_reason == "stop"


async def test_the_conversation_and_tools_are_sent_as_chat_completions(
    server: WireServer,
) -> None:
    server.reply(openai_reply("Done."))
    call = ToolCall(id="call_1", name="read_file", arguments={"path": "README.md"})
    conversation = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Read the README."),
        Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", content="# Keel", tool_call_id="call_1"),
    ]
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    tool = ToolSpec(name="read_file", description="Read a file.", parameters=schema)

    await model().complete(conversation, [tool])

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "gpt-test"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Read the README."},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "README.md"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "# Keel"},
    ]
    assert request.body["tools"] == [
        {
            "type": "function",
            "function": {"name": "read_file", "description": "Read a file.", "parameters": schema},
        }
    ]


async def test_no_tools_means_no_tools_field(server: WireServer) -> None:
    server.reply(openai_reply("Hi."))

    await model().complete(QUESTION)

    assert "tools" not in server.requests[0].body


async def test_a_tool_call_is_assembled_from_argument_pieces(server: WireServer) -> None:
    pieces = ['{"pa', 'th": "REA', 'DME.md"}']
    server.reply(openai_reply("Reading.", calls=[StreamedCall("call_1", "read_file", pieces)]))

    response = await model().complete(QUESTION)

    assert response.message.content == "Reading."
    assert response.message.tool_calls == [
        ToolCall(id="call_1", name="read_file", arguments={"path": "README.md"})
    ]
    assert response.finish_reason == "tool_calls"


async def test_two_tool_calls_are_kept_apart_by_index_even_when_interleaved(
    server: WireServer,
) -> None:
    def tool_delta(index: int, **fields: object) -> str:
        return openai_chunk({"tool_calls": [{"index": index, **fields}]})

    server.reply(
        openai_stream(
            tool_delta(0, id="call_a", type="function", function={"name": "add", "arguments": ""}),
            tool_delta(1, id="call_b", type="function", function={"name": "mul", "arguments": ""}),
            tool_delta(0, function={"arguments": '{"a": 1, '}),
            tool_delta(1, function={"arguments": '{"a": 2, '}),
            tool_delta(1, function={"arguments": '"b": 3}'}),
            tool_delta(0, function={"arguments": '"b": 4}'}),
            openai_chunk({}, finish_reason="tool_calls"),
        )
    )

    response = await model().complete(QUESTION)

    assert response.message.tool_calls == [
        ToolCall(id="call_a", name="add", arguments={"a": 1, "b": 4}),
        ToolCall(id="call_b", name="mul", arguments={"a": 2, "b": 3}),
    ]


@pytest.mark.parametrize("text", ['{"path": "READ', "[1, 2]", "not json"])
async def test_arguments_that_are_not_a_json_object_are_kept_as_invalid_arguments(
    server: WireServer, text: str
) -> None:
    server.reply(openai_reply(calls=[StreamedCall("call_1", "read_file", [text])]))

    response = await model().complete(QUESTION)

    [call] = response.message.tool_calls
    assert (call.arguments, call.invalid_arguments) == ({}, text)


async def test_a_rate_limit_is_retried_after_the_servers_delay(server: WireServer) -> None:
    server.reply(
        openai_error(429, "Rate limit reached", headers={"retry-after": "0"}),
        openai_reply("Second time lucky."),
    )
    retrying = resolve_model("openai:gpt-test", ModelSettings(timeout_s=5.0, max_attempts=2))

    response = await retrying.complete(QUESTION)

    assert response.message.content == "Second time lucky."
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1500"}, 1.5), ({}, None)],
)
async def test_a_rate_limit_carries_the_servers_retry_after(
    server: WireServer, headers: dict[str, str], seconds: float | None
) -> None:
    server.reply(openai_error(429, "Rate limit reached", headers=headers))

    with pytest.raises(ModelUnavailable, match="HTTP 429") as raised:
        await model().complete(QUESTION)

    assert raised.value.retry_after == seconds


async def test_server_errors_are_retried_until_the_attempts_run_out(server: WireServer) -> None:
    server.reply(*[openai_error(500, "The server had an error")] * 3)
    retrying = RetryingModel(model(), max_attempts=3, base_delay_s=0.0)

    with pytest.raises(ModelUnavailable, match=r"HTTP 500.*gave up after 3 attempts"):
        await retrying.complete(QUESTION)

    assert len(server.requests) == 3


async def test_a_dropped_connection_is_retryable(server: WireServer) -> None:
    server.reply(Reply(drop=True))

    with pytest.raises(ModelUnavailable, match="the connection failed"):
        await model().complete(QUESTION)


async def test_an_error_event_inside_the_stream_is_retryable(server: WireServer) -> None:
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    server.reply(Reply(events=[openai_chunk({"content": "Hal"}), sse(error)]))

    with pytest.raises(ModelUnavailable, match="The server had an error"):
        await model().complete(QUESTION)


async def test_a_stream_cut_short_is_retryable(server: WireServer) -> None:
    cut = openai_reply("Hal", "f an answer")
    server.reply(Reply(events=[*cut.events[:3], sse("[DONE]")]))

    with pytest.raises(ModelUnavailable, match="no finish_reason"):
        await model().complete(QUESTION)


async def test_a_server_slower_than_the_timeout_is_retryable(server: WireServer) -> None:
    server.reply(Reply(stall_s=5.0, body={}))

    with pytest.raises(ModelUnavailable, match="timed out"):
        await model(ModelSettings(timeout_s=0.1)).complete(QUESTION)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "check the API key"), (404, "check the model name"), (400, "")],
)
async def test_a_client_error_is_refused_without_a_retry(
    server: WireServer, status: int, hint: str
) -> None:
    server.reply(openai_error(status, "Incorrect API key provided"))
    retrying = resolve_model("openai:gpt-test", SETTINGS)

    with pytest.raises(ModelRefused) as raised:
        await retrying.complete(QUESTION)

    message = str(raised.value)
    assert f"openai model 'gpt-test' at {server.url}/v1" in message
    assert f"HTTP {status}" in message
    assert "Incorrect API key provided" in message
    assert hint in message
    assert len(server.requests) == 1


def test_a_missing_key_names_the_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_OPENAI_API_KEY")

    with pytest.raises(ModelConfigError, match="set KEEL_OPENAI_API_KEY or OPENAI_API_KEY"):
        resolve_model("openai:gpt-test", SETTINGS)


async def test_the_key_comes_from_the_variable_the_session_names(
    server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ModelSettings(providers={"openai": ProviderSettings(api_key_env="TEAM_KEY")})
    with pytest.raises(ModelConfigError, match=r"set TEAM_KEY$"):
        model(settings)
    monkeypatch.setenv("TEAM_KEY", "sk-team")
    server.reply(openai_reply("Hi."))

    await model(settings).complete(QUESTION)

    assert server.requests[0].headers["authorization"] == "Bearer sk-team"


async def test_the_base_url_can_come_from_openai_base_url(
    server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/compat/v1")
    server.reply(openai_reply("Hi."))

    await model().complete(QUESTION)

    assert server.requests[0].path == "/compat/v1/chat/completions"


async def test_the_sessions_base_url_wins_over_the_environment(server: WireServer) -> None:
    provider = ProviderSettings(base_url=f"{server.url}/session/v1")
    server.reply(openai_reply("Hi."))

    await model(ModelSettings(providers={"openai": provider})).complete(QUESTION)

    assert server.requests[0].path == "/session/v1/chat/completions"
