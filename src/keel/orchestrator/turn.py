"""One agent turn: the agent's instructions and its task in, the model's answer out."""

from __future__ import annotations

import time
from dataclasses import dataclass

from keel.events import kinds
from keel.models import Message, Model, Usage
from keel.orchestrator.loop import Unit
from keel.types import AgentDefinition


@dataclass(frozen=True, slots=True)
class TurnResult:
    text: str
    usage: Usage


async def agent_turn(
    agent: AgentDefinition, model: Model, prompt: str, unit: Unit, task_id: str
) -> TurnResult:
    messages = [Message(role="user", content=prompt)]
    if agent.instructions:
        messages.insert(0, Message(role="system", content=agent.instructions))
    started = time.perf_counter()
    response = await model.complete(messages)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    unit.emit(
        kinds.MODEL_CALL,
        {
            "agent": agent.name,
            "model": response.model,
            "inputTokens": response.usage.input_tokens,
            "outputTokens": response.usage.output_tokens,
            "durationMs": duration_ms,
        },
        task_id=task_id,
        actor=agent.name,
    )
    text = response.message.content
    unit.emit(
        kinds.AGENT_MESSAGE, {"agent": agent.name, "text": text}, task_id=task_id, actor=agent.name
    )
    return TurnResult(text=text, usage=response.usage)
