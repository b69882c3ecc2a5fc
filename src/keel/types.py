"""The seed's data model, shared by every module.

JSON on the wire keeps the seed's camelCase names (`parentId`, `memoryScope`); Python
attributes are snake_case. Models that users write by hand (agent files) forbid unknown
fields so a typo is an error, not a silently ignored key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from keel.errors import ValidationFailed

JsonObject = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


def utc_now() -> datetime:
    return datetime.now(UTC)


class KeelModel(BaseModel):
    """Base of the wire models: camelCase JSON, snake_case Python, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_json(self) -> JsonObject:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class PermissionLevel(StrEnum):
    """How much an agent may do; each level includes the ones below it."""

    L0 = "L0"  # no tools
    L1 = "L1"  # read the workspace
    L2 = "L2"  # write the workspace
    L3 = "L3"  # run commands in the sandbox, no network
    L4 = "L4"  # network and external side effects
    L5 = "L5"  # unrestricted host access

    @property
    def rank(self) -> int:
        return int(self.value[1])


SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*:(\*|[a-z][a-z0-9_-]*)(:[^\s]+)?$")


class Permission(KeelModel):
    level: PermissionLevel
    scope: str
    description: str | None = None

    @field_validator("scope")
    @classmethod
    def _scope_is_well_formed(cls, value: str) -> str:
        if not SCOPE_PATTERN.match(value):
            raise ValueError(
                f"'{value}' is not a scope; write 'resource:action' such as 'file:read', "
                "'shell:exec' or 'network:external'"
            )
        return value


class ArtifactType(StrEnum):
    FILE = "file"
    CODE = "code"
    DOCUMENT = "document"
    DATA = "data"


class Artifact(KeelModel):
    id: str
    name: str
    type: ArtifactType
    uri: str
    checksum: str | None = None
    created_at: datetime = Field(default_factory=utc_now)


class Budget(KeelModel):
    tokens_limit: int | None = Field(default=None, gt=0)
    time_limit_ms: int | None = Field(default=None, gt=0)


class SessionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (SessionStatus.DONE, SessionStatus.FAILED, SessionStatus.CANCELLED)


class Session(KeelModel):
    id: str
    user_id: str
    goal: str = ""
    status: SessionStatus = SessionStatus.PENDING
    config: JsonObject | None = None
    budget: Budget | None = None
    agent_versions: dict[str, int] = Field(default_factory=dict)
    final_answer: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class MemoryScope(StrEnum):
    NONE = "none"
    SESSION = "session"
    PROJECT = "project"
    GLOBAL = "global"


NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class McpServer(KeelModel):
    """An MCP server whose tools an agent gets, as `mcp__<name>__<tool>`: a command that
    speaks MCP over stdio, or the URL of a Streamable HTTP endpoint."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (Streamable HTTP)")


RetryableFailure = Literal["rate_limit", "server_error", "connection", "timeout"]
RETRYABLE_FAILURES: tuple[RetryableFailure, ...] = (
    "rate_limit",
    "server_error",
    "connection",
    "timeout",
)


class RetryPolicy(KeelModel):
    """How an agent's model calls are retried: attempts, backoff, and which failures."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    initial_delay_s: float = Field(default=0.5, gt=0, le=60)
    max_delay_s: float = Field(default=30.0, gt=0, le=600)
    retry_on: list[RetryableFailure] = Field(default_factory=lambda: list(RETRYABLE_FAILURES))
    timeout_s: float | None = Field(default=None, gt=0, description="Per model call.")


class AgentDefinition(KeelModel):
    """What an agent is: a replaceable executor with a role, a model and its grants."""

    id: str = ""
    name: str = Field(pattern=NAME_PATTERN)
    role: str = Field(min_length=1)
    model: str = Field(min_length=1)
    instructions: str = ""
    tools: list[str] = Field(default_factory=list)
    permissions: list[Permission] = Field(default_factory=list)
    memory_scope: MemoryScope = MemoryScope.SESSION
    capabilities: list[str] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list)
    max_turns: int = Field(default=20, ge=1, le=500, description="Model calls per task.")
    retry: RetryPolicy | None = None
    version: int | None = Field(default=None, description="Assigned by the registry.")

    def model_post_init(self, _context: Any) -> None:
        if not self.id:
            self.id = self.name

    @property
    def provider(self) -> str:
        return self.model.split(":", 1)[0]


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)


class Task(KeelModel):
    id: str
    parent_id: str | None = None
    session_id: str
    assigned_agent: str | None = None
    goal: str
    status: TaskStatus = TaskStatus.PENDING
    input: JsonObject = Field(default_factory=dict)
    output: JsonObject | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class TraceEvent(KeelModel):
    """One entry of the event log; `seq` is gap-free per session."""

    id: str
    seq: int
    run_id: str
    session_id: str
    task_id: str | None = None
    actor: str
    type: str
    payload: JsonObject = Field(default_factory=dict)
    timestamp: datetime


def describe_validation_error(error: ValidationError) -> list[tuple[str, str]]:
    """Turn a pydantic error into (field path, message) pairs using the wire names."""
    problems: list[tuple[str, str]] = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += ("." if path else "") + str(part)
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append((path or "(root)", message))
    return problems


def parse_model(model: type[M], data: Any, subject: str) -> M:
    """Validate `data` into `model`, raising `ValidationFailed` that names each field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValidationFailed(subject, describe_validation_error(error)) from None
