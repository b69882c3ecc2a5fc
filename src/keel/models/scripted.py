"""A deterministic scripted model for tests, demos and benchmarks.

A script is either a list of replies (reply *n* answers the conversation that already holds
*n* assistant messages, so a resumed session gets the same reply it would have got) or a
function of the conversation. Token usage is counted the same way every time (about four
characters a token), so budgets and reports behave as with a real model.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence

from keel.errors import ModelError
from keel.models.base import DeltaSink, Message, Model, ModelResponse, ToolSpec, Usage
from keel.models.scripts import BUILTIN_SCRIPTS
from keel.models.settings import ModelSettings

Reply = str | Message
ScriptFunction = Callable[[Sequence[Message], Sequence[ToolSpec]], Reply]
Script = Sequence[Reply] | ScriptFunction


def count_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


class ScriptedModel(Model):
    def __init__(self, script: Script, *, name: str = "scripted", latency_s: float = 0.0) -> None:
        self.name = name
        self._script = script
        self._latency_s = latency_s

    def _reply(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message:
        if callable(self._script):
            reply = self._script(messages, tools)
        else:
            turn = sum(1 for message in messages if message.role == "assistant")
            if turn >= len(self._script):
                raise ModelError(
                    f"scripted model '{self.name}' has {len(self._script)} replies and was "
                    f"asked for reply {turn + 1}"
                )
            reply = self._script[turn]
        if isinstance(reply, str):
            return Message(role="assistant", content=reply)
        return reply

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelResponse:
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        message = self._reply(messages, tools)
        if on_delta is not None and message.content:
            for piece in re.findall(r"\S+\s*", message.content):
                on_delta(piece)
        prompt = "".join(m.content for m in messages)
        produced = message.content + "".join(
            json.dumps(call.arguments) for call in message.tool_calls
        )
        usage = Usage(input_tokens=count_tokens(prompt), output_tokens=count_tokens(produced))
        return ModelResponse(message=message, usage=usage, model=f"scripted:{self.name}")


scripts: dict[str, Script] = {**BUILTIN_SCRIPTS}
"""Every script `scripted:<name>` can name in this process (built in and registered)."""


def create(name: str, settings: ModelSettings) -> ScriptedModel:
    return ScriptedModel(scripts[name], name=name, latency_s=settings.scripted_latency_s)
