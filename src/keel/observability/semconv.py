"""The names of the OpenTelemetry GenAI semantic conventions Keel's traces use, beside the
few rules for filling them (semantic-conventions v1.41, GenAI, development status).

`gen_ai.provider.name` is used, not the older `gen_ai.system`; content (messages, tool
arguments and results) is opt-in in the conventions and stays out of Keel's spans.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from keel.types import JsonObject

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
AGENT_NAME = "gen_ai.agent.name"
AGENT_VERSION = "gen_ai.agent.version"
CONVERSATION = "gen_ai.conversation.id"
WORKFLOW_NAME = "gen_ai.workflow.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"

OTHER_PROVIDER = "_OTHER"
TEXT_LIMIT = 500
_PAYLOAD_KEYS = {"tool": TOOL_NAME, "callId": TOOL_CALL_ID}
_CONTENT_KEYS = frozenset({"arguments", "output", "text"})


def model_parts(model: str) -> tuple[str, str]:
    """(gen_ai.provider.name, gen_ai.request.model) of a Keel model string `provider:name`."""
    provider, _, name = model.partition(":")
    return (provider, name) if name else (OTHER_PROVIDER, model)


def clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def event_attributes(payload: JsonObject, prefix: str) -> dict[str, AttributeValue]:
    """An event payload's fields as span-event attributes named `prefix.snake_case`, a
    tool's name and call id by the conventions; content stays out."""
    found: dict[str, AttributeValue] = {}
    for key, value in payload.items():
        if key in _CONTENT_KEYS or value is None:
            continue
        name = _PAYLOAD_KEYS.get(key, f"{prefix}.{_snake(key)}")
        if isinstance(value, bool | int | float):
            found[name] = value
        elif isinstance(value, str):
            found[name] = clip(value)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            found[name] = [clip(item) for item in value]
        else:
            found[name] = clip(json.dumps(value, separators=(",", ":")))
    return found


def workflow_attributes(
    workflow: str, session_id: str, run_id: str, goal: str | None
) -> dict[str, AttributeValue]:
    """The root span's: `invoke_workflow {workflow}`, one per run of a session."""
    attributes: dict[str, AttributeValue] = {
        OPERATION: "invoke_workflow",
        WORKFLOW_NAME: workflow,
        CONVERSATION: session_id,
        "keel.session.id": session_id,
        "keel.run.id": run_id,
    }
    if goal:
        attributes["keel.session.goal"] = clip(goal)
    return attributes


def agent_attributes(
    agent: str, version: int | None, session_id: str, task_id: str, goal: str | None
) -> dict[str, AttributeValue]:
    """An agent turn's: `invoke_agent {agent}`, in process (INTERNAL)."""
    attributes: dict[str, AttributeValue] = {
        OPERATION: "invoke_agent",
        AGENT_NAME: agent,
        CONVERSATION: session_id,
        "keel.task.id": task_id,
    }
    if version is not None:
        attributes[AGENT_VERSION] = str(version)
    if goal:
        attributes["keel.task.goal"] = clip(goal)
    return attributes


def chat_attributes(
    payload: JsonObject, agent: str, session_id: str, task_id: str
) -> dict[str, AttributeValue]:
    """A model call's (a `model.call` event's payload): `chat {model}`, CLIENT."""
    provider, model = model_parts(str(payload.get("model", "")))
    attributes: dict[str, AttributeValue] = {
        OPERATION: "chat",
        PROVIDER: provider,
        REQUEST_MODEL: model,
        RESPONSE_MODEL: model,
        INPUT_TOKENS: int(payload.get("inputTokens") or 0),
        OUTPUT_TOKENS: int(payload.get("outputTokens") or 0),
        AGENT_NAME: agent,
        CONVERSATION: session_id,
        "keel.task.id": task_id,
        "keel.model.tool_calls": int(payload.get("toolCalls") or 0),
    }
    if payload.get("finishReason"):
        attributes[FINISH_REASONS] = [str(payload["finishReason"])]
    return attributes


def tool_attributes(tool: str, call_id: str, task_id: str) -> dict[str, AttributeValue]:
    """A tool call's: `execute_tool {tool}`, INTERNAL; Keel's tools are functions."""
    return {
        OPERATION: "execute_tool",
        TOOL_NAME: tool,
        TOOL_CALL_ID: call_id,
        TOOL_TYPE: "function",
        "keel.task.id": task_id,
    }
