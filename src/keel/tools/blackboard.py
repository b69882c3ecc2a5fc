"""The blackboard tools: read and write facts, record decisions, put and get artifacts.

They are built per agent (`blackboard_tools`) because they act with the agent's memory
scope and its session's project, which a `ToolContext` does not carry; the context gives
each call's session, task and agent, the provenance of whatever it writes. Like every tool
they pass the guardrails first (scopes `memory:read`, `memory:write`, `artifact:read`,
`artifact:write`); then the blackboard enforces the memory scope. A refusal, a version
conflict or a missing key reaches the model as a `ToolError` that says what to do.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from keel.blackboard import (
    Actor,
    ArtifactStore,
    BlackboardError,
    DecisionLog,
    Fact,
    FactRef,
    FactStore,
)
from keel.events import dump_json
from keel.tools.base import Tool, ToolContext, ToolError, TypedTool
from keel.types import ArtifactType, JsonObject, MemoryScope

Scope = Literal["session", "project", "global"]
A = TypeVar("A", bound=BaseModel)

_SCOPE_HELP = (
    "session (this session), project (every session of the project) or global; "
    "your memory scope decides which you may use"
)


@dataclass(frozen=True, slots=True)
class BlackboardAccess:
    """What the blackboard tools of one agent act with."""

    facts: FactStore
    decisions: DecisionLog
    artifacts: ArtifactStore
    memory_scope: MemoryScope
    run_id: str
    project: str | None = None

    def actor(self, context: ToolContext) -> Actor:
        return Actor(
            agent=context.agent,
            session_id=context.session_id,
            run_id=self.run_id,
            memory_scope=self.memory_scope,
            project=self.project,
            task_id=context.task_id or None,
        )


class _BlackboardTool(TypedTool[A]):
    def __init__(self, access: BlackboardAccess) -> None:
        super().__init__()
        self._access = access

    async def call(self, arguments: A, context: ToolContext) -> str:
        try:
            return await self.act(arguments, self._access.actor(context))
        except BlackboardError as error:
            raise ToolError(str(error)) from None

    @abstractmethod
    async def act(self, arguments: A, actor: Actor) -> str: ...


def _shown(fact: Fact) -> JsonObject:
    shown: JsonObject = {
        "key": fact.key,
        "scope": fact.scope,
        "version": fact.version,
        "kind": fact.kind.value,
        "value": fact.value,
        "writtenBy": fact.agent,
        "writtenAt": fact.written_at.isoformat(),
    }
    if fact.expires_at is not None:
        shown["expiresAt"] = fact.expires_at.isoformat()
    return shown


class BlackboardReadArgs(BaseModel):
    key: str = Field(min_length=1, description="The fact's key, such as 'api/base-url'.")
    scope: Scope | None = Field(
        default=None,
        description=f"Where to look: {_SCOPE_HELP}. Default: the narrowest that has the key.",
    )


class BlackboardRead(_BlackboardTool[BlackboardReadArgs]):
    name = "blackboard_read"
    description = (
        "Read a fact or decision from the shared blackboard: its JSON value, version "
        "(pass it as expected_version when you update it), who wrote it and when."
    )
    arguments_model = BlackboardReadArgs
    scopes = ("memory:read",)
    read_only = True
    idempotent = True

    async def act(self, arguments: BlackboardReadArgs, actor: Actor) -> str:
        fact = await self._access.facts.read(actor, arguments.key, scope=arguments.scope)
        return dump_json(_shown(fact))


class BlackboardWriteArgs(BaseModel):
    key: str = Field(min_length=1, description="The fact's key, such as 'api/base-url'.")
    value: Any = Field(description="The fact: any JSON value.")
    scope: Scope = Field(default="session", description=f"Where to write: {_SCOPE_HELP}.")
    ttl_s: float | None = Field(
        default=None, gt=0, description="Seconds until the fact expires; default: never."
    )
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="The version you read: the write fails if the fact has changed since. "
        "0: the key must not exist yet. Default: overwrite whatever is there.",
    )


class BlackboardWrite(_BlackboardTool[BlackboardWriteArgs]):
    name = "blackboard_write"
    description = (
        "Write a fact to the shared blackboard for the other agents: a new version of the "
        "key, kept in its history with you as its author."
    )
    arguments_model = BlackboardWriteArgs
    scopes = ("memory:write",)

    async def act(self, arguments: BlackboardWriteArgs, actor: Actor) -> str:
        fact = await self._access.facts.write(
            actor,
            arguments.key,
            arguments.value,
            scope=arguments.scope,
            ttl_s=arguments.ttl_s,
            expected_version=arguments.expected_version,
        )
        expiry = f", expires at {fact.expires_at.isoformat()}" if fact.expires_at else ""
        return f"wrote '{fact.key}' version {fact.version} in {fact.scope}{expiry}"


class FactPointer(BaseModel):
    key: str = Field(min_length=1)
    scope: Scope = "session"
    version: int | None = Field(
        default=None, ge=1, description="The version decided on; default: the current one."
    )


class RecordDecisionArgs(BaseModel):
    decision: str = Field(min_length=1, description="What was decided, in one sentence.")
    rationale: str = Field(min_length=1, description="Why.")
    alternatives: list[str] = Field(
        default_factory=list, description="The options considered and not taken."
    )
    rests_on: list[FactPointer] = Field(
        default_factory=list, description="The blackboard facts the decision is based on."
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        description="Key to record it under (the same key again revises it); default: new.",
    )
    scope: Scope = Field(default="session", description=f"Where to record it: {_SCOPE_HELP}.")


class RecordDecision(_BlackboardTool[RecordDecisionArgs]):
    name = "record_decision"
    description = (
        "Record a decision on the blackboard with its rationale, the alternatives "
        "considered and the facts it rests on, so other agents follow it."
    )
    arguments_model = RecordDecisionArgs
    scopes = ("memory:write",)

    async def act(self, arguments: RecordDecisionArgs, actor: Actor) -> str:
        recorded = await self._access.decisions.record(
            actor,
            decision=arguments.decision,
            rationale=arguments.rationale,
            alternatives=arguments.alternatives,
            rests_on=[
                FactRef(scope=p.scope, key=p.key, version=p.version) for p in arguments.rests_on
            ],
            key=arguments.key,
            scope=arguments.scope,
        )
        fact = recorded.fact
        basis = ", ".join(f"{r.key}@{r.version}" for r in recorded.decision.rests_on)
        resting = f", resting on {basis}" if basis else ""
        return f"recorded decision '{fact.key}' version {fact.version} in {fact.scope}{resting}"


class ArtifactPutArgs(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="A file name, e.g. 'plan.md'.")
    content: str = Field(description="The artifact's text.")
    type: ArtifactType = Field(default=ArtifactType.DOCUMENT, description="What it is.")
    scope: Scope = Field(default="session", description=f"Who may get it: {_SCOPE_HELP}.")


class ArtifactPut(_BlackboardTool[ArtifactPutArgs]):
    name = "artifact_put"
    description = (
        "Store a text artifact (a report, a plan, a patch, data) linked to your task; "
        "returns its id, which other agents pass to artifact_get."
    )
    arguments_model = ArtifactPutArgs
    scopes = ("artifact:write",)

    async def act(self, arguments: ArtifactPutArgs, actor: Actor) -> str:
        content = arguments.content.encode("utf-8")
        artifact = await self._access.artifacts.put(
            content, name=arguments.name, type=arguments.type, actor=actor, scope=arguments.scope
        )
        return (
            f"stored artifact {artifact.id} '{artifact.name}' ({artifact.type.value}, "
            f"{len(content)} bytes, {artifact.checksum})"
        )


class ArtifactGetArgs(BaseModel):
    id: str = Field(min_length=1, description="The artifact's id, such as 'a_01kc...'.")


class ArtifactGet(_BlackboardTool[ArtifactGetArgs]):
    name = "artifact_get"
    description = "Get the text of an artifact by its id; its checksum is verified first."
    arguments_model = ArtifactGetArgs
    scopes = ("artifact:read",)
    read_only = True
    idempotent = True

    async def act(self, arguments: ArtifactGetArgs, actor: Actor) -> str:
        artifact, content = await self._access.artifacts.get(arguments.id, actor=actor)
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(
                f"artifact {artifact.id} '{artifact.name}' is binary ({len(content)} bytes); "
                "it cannot be shown as text"
            ) from None


BLACKBOARD_TOOL_NAMES = frozenset(
    {"blackboard_read", "blackboard_write", "record_decision", "artifact_put", "artifact_get"}
)


def blackboard_tools(
    facts: FactStore,
    decisions: DecisionLog,
    artifacts: ArtifactStore,
    *,
    memory_scope: MemoryScope,
    run_id: str,
    project: str | None = None,
) -> dict[str, Tool]:
    """The five blackboard tools of one agent, acting with its memory scope in `project`."""
    access = BlackboardAccess(facts, decisions, artifacts, memory_scope, run_id, project)
    tools: list[Tool] = [
        BlackboardRead(access),
        BlackboardWrite(access),
        RecordDecision(access),
        ArtifactPut(access),
        ArtifactGet(access),
    ]
    return {tool.name: tool for tool in tools}
