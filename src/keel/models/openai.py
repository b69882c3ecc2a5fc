"""OpenAI's Chat Completions API as a Keel model: api.openai.com, and every server that
speaks the same wire protocol (vLLM, Ollama, llama.cpp) at another base URL.

This module owns three translations: Keel messages and tool specs into Chat Completions
parameters, the streamed chunks back into one `ModelResponse`, and the SDK's errors into
Keel's. It never retries: the SDK client is made with `max_retries=0`, and `RetryingModel`
decides from the `ModelUnavailable` raised here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

from keel.errors import ModelError, ModelRefused, ModelUnavailable
from keel.models.base import DeltaSink, Message, ModelResponse, ToolCall, ToolSpec, Usage
from keel.models.http_wire import (
    RETRYABLE_STATUSES,
    HttpModel,
    parse_arguments,
    retry_after,
)
from keel.models.settings import ModelSettings

PROVIDER = "openai"
KEY_VARIABLES = ("KEEL_OPENAI_API_KEY", "OPENAI_API_KEY")
BASE_URL_VARIABLES = ("KEEL_OPENAI_BASE_URL", "OPENAI_BASE_URL")
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def create(name: str, settings: ModelSettings) -> OpenAIModel:
    return OpenAIModel.from_settings(name, settings)


class OpenAIModel(HttpModel):
    provider = PROVIDER
    default_base_url = DEFAULT_BASE_URL
    key_variables = KEY_VARIABLES
    base_url_variables = BASE_URL_VARIABLES

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelResponse:
        answer = _StreamedAnswer()
        try:
            # A client per call: `Model` has no close(), and a client kept between calls
            # would hold pooled connections open past the event loop that made them.
            async with openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=self._timeout_s,
            ) as client:
                stream = await client.chat.completions.create(
                    model=self.name,
                    messages=[chat_message(message) for message in messages],
                    tools=[chat_tool(tool) for tool in tools] if tools else openai.omit,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async with stream:
                    async for chunk in stream:
                        answer.add(chunk, on_delta)
        except openai.OpenAIError as error:
            raise self._keel_error(error) from error
        if answer.finish_reason is None:
            raise ModelUnavailable(
                f"{self._where}: the stream ended before the answer did (no finish_reason)"
            )
        return answer.response(f"{PROVIDER}:{self.name}")

    def _keel_error(self, error: openai.OpenAIError) -> ModelError:
        where = self._where
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            reason = _reason(error)
            if status in RETRYABLE_STATUSES or status >= 500:
                return ModelUnavailable(
                    f"{where} is unavailable (HTTP {status}): {reason}",
                    retry_after=retry_after(error.response.headers),
                    kind="rate_limit" if status == 429 else "server_error",
                )
            return ModelRefused(self._refused(status, reason))
        if isinstance(error, openai.APIConnectionError):
            detail = str(error.__cause__ or "") or error.message
            return ModelUnavailable(f"{where}: the connection failed: {detail}", kind="connection")
        if isinstance(error, openai.APIError):
            # An error event inside a stream that began with 200: the server failed mid-answer.
            return ModelUnavailable(f"{where} failed while answering: {error.message}")
        return ModelError(f"{where}: {error}")


# -- Keel -> Chat Completions ---------------------------------------------------------------


def chat_message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ModelError("a tool message needs the tool_call_id of the call it answers")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    assistant: ChatCompletionAssistantMessageParam = {"role": "assistant"}
    if message.content or not message.tool_calls:
        assistant["content"] = message.content
    if message.tool_calls:
        assistant["tool_calls"] = [_chat_tool_call(call) for call in message.tool_calls]
    return assistant


def _chat_tool_call(call: ToolCall) -> ChatCompletionMessageFunctionToolCallParam:
    # A call whose arguments were not a JSON object goes back as `{}`, not as its raw text:
    # some servers (vLLM among them) parse replayed arguments and reject the whole request.
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def chat_tool(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


# -- streamed chunks -> Keel ----------------------------------------------------------------


@dataclass
class _PendingCall:
    """A tool call being streamed: its id and name come once, its arguments in pieces."""

    id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    def finish(self, index: int) -> ToolCall:
        arguments, invalid = parse_arguments("".join(self.pieces))
        # Some local servers send no id; one derived from the position is stable on replay.
        call_id = self.id or f"call_{index}"
        return ToolCall(id=call_id, name=self.name, arguments=arguments, invalid_arguments=invalid)


@dataclass
class _StreamedAnswer:
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None

    def add(self, chunk: ChatCompletionChunk, on_delta: DeltaSink | None) -> None:
        if chunk.usage is not None:
            self.usage = Usage(
                input_tokens=chunk.usage.prompt_tokens,
                output_tokens=chunk.usage.completion_tokens,
            )
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                self.text.append(delta.content)
                if on_delta is not None:
                    on_delta(delta.content)
            for piece in delta.tool_calls or ():
                call = self.calls.setdefault(piece.index, _PendingCall())
                call.id = call.id or piece.id or ""
                if piece.function is not None:
                    call.name = call.name or piece.function.name or ""
                    call.pieces.append(piece.function.arguments or "")
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason

    def response(self, model: str) -> ModelResponse:
        calls = [self.calls[index].finish(index) for index in sorted(self.calls)]
        message = Message(role="assistant", content="".join(self.text), tool_calls=calls)
        return ModelResponse(
            message=message, usage=self.usage, model=model, finish_reason=self.finish_reason
        )


# -- errors ---------------------------------------------------------------------------------


def _reason(error: openai.APIStatusError) -> str:
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else error.message
