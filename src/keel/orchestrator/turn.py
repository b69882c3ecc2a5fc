"""One agent turn: a model call with the task's conversation and the agent's tools, its
streamed text published as it arrives; and the tool calls it asks for, run through the
tool executor (read-only calls of one batch concurrently)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keel.errors import ModelUnavailable
from keel.events import kinds
from keel.models import Message, ModelResponse, RetryingModel, ToolCall, ToolSpec
from keel.orchestrator.unit import Unit
from keel.tools import ToolContext, ToolExecutor, ToolOutcome
from keel.types import AgentDefinition

DELTA_INTERVAL_S = 0.1
EVENT_OUTPUT_CHARS = 4000


class DeltaStream:
    """Publishes streamed model text as `model.delta` events, at most one per interval."""

    def __init__(self, unit: Unit, agent: str, task_id: str) -> None:
        self._unit = unit
        self._agent = agent
        self._task_id = task_id
        self._buffer: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self._published = False

    def __call__(self, text: str) -> None:
        self._buffer.append(text)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(DELTA_INTERVAL_S)
        self._flusher = None
        await self._flush()

    async def _flush(self) -> None:
        if not self._buffer:
            return
        self._published = True
        text, self._buffer = "".join(self._buffer), []
        await self._unit.publish(
            kinds.MODEL_DELTA,
            {"agent": self._agent, "text": text},
            task_id=self._task_id,
            actor=self._agent,
        )

    async def close(self) -> None:
        """Publish what is left; text of a call too quick to have streamed anything yet goes
        into the step itself, which saves a commit."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if not self._published and self._buffer:
            text, self._buffer = "".join(self._buffer), []
            payload = {"agent": self._agent, "text": text}
            self._unit.emit(kinds.MODEL_DELTA, payload, task_id=self._task_id, actor=self._agent)
            return
        await self._flush()


@dataclass(frozen=True, slots=True)
class ModelTurn:
    response: ModelResponse
    duration_ms: float


async def call_model(
    agent: AgentDefinition,
    model: RetryingModel,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    unit: Unit,
    task_id: str,
    time_left_s: float | None,
) -> ModelTurn:
    """Call the agent's model; raise ModelError (ModelUnavailable when time ran out)."""
    deltas = DeltaStream(unit, agent.name, task_id)
    pending_retries: list[asyncio.Task[None]] = []

    def on_retry(attempt: int, error: ModelUnavailable, delay: float) -> None:
        payload = {"agent": agent.name, "attempt": attempt, "error": str(error), "delayS": delay}
        pending_retries.append(
            asyncio.get_running_loop().create_task(
                unit.publish(kinds.MODEL_RETRY, payload, task_id=task_id, actor=agent.name)
            )
        )

    started = time.perf_counter()
    try:
        async with asyncio.timeout(time_left_s):
            response = await model.complete_with_retries(
                messages, tools, on_delta=deltas, on_retry=on_retry
            )
    except TimeoutError:
        raise ModelUnavailable(
            f"{agent.name}'s model call was stopped: the time budget ran out"
        ) from None
    finally:
        await deltas.close()
        await asyncio.gather(*pending_retries)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    unit.emit(
        kinds.MODEL_CALL,
        {
            "agent": agent.name,
            "model": response.model,
            "inputTokens": response.usage.input_tokens,
            "outputTokens": response.usage.output_tokens,
            "durationMs": duration_ms,
            "toolCalls": len(response.message.tool_calls),
            "finishReason": response.finish_reason,
        },
        task_id=task_id,
        actor=agent.name,
    )
    if response.message.content:
        unit.emit(
            kinds.AGENT_MESSAGE,
            {"agent": agent.name, "text": response.message.content},
            task_id=task_id,
            actor=agent.name,
        )
    return ModelTurn(response, duration_ms)


def next_batch(calls: Sequence[ToolCall], executor: ToolExecutor) -> list[ToolCall]:
    """The calls to run together next: a run of read-only calls, or one other call."""
    batch: list[ToolCall] = []
    for call in calls:
        tool = executor.tool(call.name)
        read_only = tool is not None and tool.read_only and call.invalid_arguments is None
        if not read_only:
            return batch or [call]
        batch.append(call)
    return batch


async def run_tools(
    executor: ToolExecutor,
    agent: AgentDefinition,
    calls: Sequence[ToolCall],
    context: ToolContext,
    unit: Unit,
    approved: Mapping[str, bool] | None = None,
) -> list[ToolOutcome]:
    def emit(kind: str, payload: dict[str, object]) -> None:
        unit.emit(kind, payload, task_id=context.task_id, actor=agent.name)

    answers = approved or {}
    outcomes = list(
        await asyncio.gather(
            *(executor.execute(agent, c, context, emit, approved=answers.get(c.id)) for c in calls)
        )
    )
    for outcome in outcomes:
        shown = outcome.output
        if len(shown) > EVENT_OUTPUT_CHARS:
            shown = shown[:EVENT_OUTPUT_CHARS] + "\n[cut in the event; the model saw all of it]"
        emit(
            kinds.TOOL_RESULT,
            {
                "callId": outcome.call_id,
                "tool": outcome.tool,
                "ok": outcome.ok,
                "output": shown,
                "durationMs": round(outcome.duration_ms, 1),
            },
        )
    return outcomes
