"""The model interface: messages and tool specs in, an assistant message and usage out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from keel.types import JsonObject


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: JsonObject = Field(default_factory=dict)
    invalid_arguments: str | None = Field(
        default=None,
        description="The model's raw argument text when it was not a JSON object; the turn "
        "loop answers such a call with a tool error instead of running it.",
    )


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None


class ToolSpec(BaseModel):
    """What a model is told about a tool: its name, purpose and JSON Schema parameters."""

    name: str
    description: str
    parameters: JsonObject = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class ModelResponse(BaseModel):
    message: Message
    usage: Usage
    model: str
    finish_reason: str | None = None


DeltaSink = Callable[[str], None]
"""Receives each piece of answer text as the model streams it."""


class Model(ABC):
    """An LLM, or anything that answers like one. Implementations must be safe to call
    again with the same conversation: a resumed session repeats an unfinished call.

    Failures are `ModelError`s: `ModelUnavailable` for what a retry may fix (rate limits,
    server errors, dropped connections, timeouts), others for what it cannot."""

    name: str

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelResponse: ...
