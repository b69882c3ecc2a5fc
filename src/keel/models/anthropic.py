"""Anthropic's Messages API as a Keel model.

This module owns three translations: Keel messages and tool specs into Messages parameters
(system text apart, tool calls as `tool_use` blocks, tool results as `tool_result` blocks in
user turns), the streamed events back into one `ModelResponse`, and the SDK's errors into
Keel's. It never retries: the SDK client is made with `max_retries=0`, and `RetryingModel`
decides from the `ModelUnavailable` raised here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anthropic
import httpx2
from anthropic.types import (
    ContentBlockParam,
    InputJSONDelta,
    MessageDeltaUsage,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    TextBlock,
    TextDelta,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlock,
)
from anthropic.types import Usage as AnthropicUsage

from keel.errors import ModelError, ModelRefused, ModelUnavailable
from keel.models.base import DeltaSink, Message, ModelResponse, ToolCall, ToolSpec, Usage
from keel.models.http_wire import (
    RETRYABLE_STATUSES,
    HttpModel,
    parse_arguments,
    retry_after,
)
from keel.models.settings import ModelSettings
from keel.types import JsonObject

PROVIDER = "anthropic"
KEY_VARIABLES = ("KEEL_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
BASE_URL_VARIABLES = ("KEEL_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL")
DEFAULT_BASE_URL = "https://api.anthropic.com"
MAX_TOKENS = 4096
"""The Messages API requires a limit on the answer's length; this one fits an agent turn."""


def create(name: str, settings: ModelSettings) -> AnthropicModel:
    return AnthropicModel.from_settings(name, settings)


class AnthropicModel(HttpModel):
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
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        answer = _StreamedAnswer()
        try:
            # A client per call: `Model` has no close(), and a client kept between calls
            # would hold pooled connections open past the event loop that made them.
            async with anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=self._timeout_s,
            ) as client:
                stream = await client.messages.create(
                    model=self.name,
                    max_tokens=MAX_TOKENS,
                    system=system or anthropic.omit,
                    messages=conversation(messages),
                    tools=[anthropic_tool(tool) for tool in tools] if tools else anthropic.omit,
                    stream=True,
                )
                async with stream:
                    async for event in stream:
                        answer.add(event, on_delta)
        except (anthropic.AnthropicError, httpx2.TransportError) as error:
            raise self._keel_error(error) from error
        if not answer.stopped:
            raise ModelUnavailable(
                f"{self._where}: the stream ended before the answer did (no message_stop)"
            )
        return answer.response(f"{PROVIDER}:{self.name}")

    def _keel_error(self, error: anthropic.AnthropicError | httpx2.TransportError) -> ModelError:
        where = self._where
        if isinstance(error, anthropic.APIStatusError) and error.status_code < 400:
            # An error event inside a stream that began with 200: the server failed mid-answer
            # (most often `overloaded_error`).
            return ModelUnavailable(f"{where} failed while answering: {_reason(error)}")
        if isinstance(error, anthropic.APIStatusError):
            status = error.status_code
            reason = _reason(error)
            if status in RETRYABLE_STATUSES or status >= 500:
                return ModelUnavailable(
                    f"{where} is unavailable (HTTP {status}): {reason}",
                    retry_after=retry_after(error.response.headers),
                    kind="rate_limit" if status == 429 else "server_error",
                )
            return ModelRefused(self._refused(status, reason))
        if isinstance(error, anthropic.APIConnectionError):
            detail = str(error.__cause__ or "") or error.message
            return ModelUnavailable(f"{where}: the connection failed: {detail}", kind="connection")
        if isinstance(error, httpx2.TransportError):
            # The SDK passes on a connection lost while the events stream in as it is.
            return ModelUnavailable(f"{where}: the connection failed: {error}", kind="connection")
        return ModelError(f"{where}: {error}")


# -- Keel -> Messages -----------------------------------------------------------------------


def conversation(messages: Sequence[Message]) -> list[MessageParam]:
    """The turns of `messages` without the system text, which the API takes apart. Tool
    results travel in a user turn, and consecutive results share one."""
    turns: list[MessageParam] = []
    results: list[ToolResultBlockParam] | None = None
    for message in messages:
        if message.role == "tool":
            if message.tool_call_id is None:
                raise ModelError("a tool message needs the tool_call_id of the call it answers")
            result: ToolResultBlockParam = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
            }
            if message.content:
                result["content"] = message.content
            if results is None:
                results = []
                turns.append({"role": "user", "content": results})
            results.append(result)
            continue
        results = None
        if message.role == "user":
            turns.append({"role": "user", "content": message.content})
        elif message.role == "assistant":
            turns.append({"role": "assistant", "content": _assistant_content(message)})
    return turns


def _assistant_content(message: Message) -> str | list[ContentBlockParam]:
    if not message.tool_calls:
        return message.content
    blocks: list[ContentBlockParam] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        # A call whose arguments were not a JSON object goes back with `{}`: `input` must be
        # an object, and the tool result already quotes the bad text.
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def anthropic_tool(tool: ToolSpec) -> ToolParam:
    return {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}


# -- streamed events -> Keel ----------------------------------------------------------------


@dataclass
class _PendingCall:
    """A `tool_use` block being streamed: its input arrives as pieces of JSON text."""

    id: str
    name: str
    start_input: JsonObject
    pieces: list[str] = field(default_factory=list)

    def finish(self) -> ToolCall:
        if not self.pieces:  # nothing streamed: the block opened with its whole input
            return ToolCall(id=self.id, name=self.name, arguments=self.start_input)
        arguments, invalid = parse_arguments("".join(self.pieces))
        return ToolCall(id=self.id, name=self.name, arguments=arguments, invalid_arguments=invalid)


@dataclass
class _StreamedAnswer:
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    stopped: bool = False

    def add(self, event: RawMessageStreamEvent, on_delta: DeltaSink | None) -> None:
        if isinstance(event, RawMessageStartEvent):
            self._count(event.message.usage)
        elif isinstance(event, RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, ToolUseBlock):
                self.calls[event.index] = _PendingCall(block.id, block.name, dict(block.input))
            elif isinstance(block, TextBlock) and block.text:
                self._say(block.text, on_delta)
        elif isinstance(event, RawContentBlockDeltaEvent):
            delta = event.delta
            if isinstance(delta, TextDelta):
                self._say(delta.text, on_delta)
            elif isinstance(delta, InputJSONDelta) and event.index in self.calls:
                self.calls[event.index].pieces.append(delta.partial_json)
        elif isinstance(event, RawMessageDeltaEvent):
            self._count(event.usage)
            self.stop_reason = event.delta.stop_reason or self.stop_reason
        elif isinstance(event, RawMessageStopEvent):
            self.stopped = True

    def _say(self, text: str, on_delta: DeltaSink | None) -> None:
        self.text.append(text)
        if on_delta is not None:
            on_delta(text)

    def _count(self, usage: AnthropicUsage | MessageDeltaUsage) -> None:
        # Counts are running totals. Cached prompt tokens are counted apart from
        # `input_tokens`, but the model read them all the same.
        if usage.input_tokens is not None:
            cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
            self.input_tokens = usage.input_tokens + cached
        self.output_tokens = usage.output_tokens

    def response(self, model: str) -> ModelResponse:
        calls = [self.calls[index].finish() for index in sorted(self.calls)]
        message = Message(role="assistant", content="".join(self.text), tool_calls=calls)
        usage = Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)
        return ModelResponse(
            message=message, usage=usage, model=model, finish_reason=self.stop_reason
        )


# -- errors ---------------------------------------------------------------------------------


def _reason(error: anthropic.APIStatusError) -> str:
    return error.api_message or error.message
