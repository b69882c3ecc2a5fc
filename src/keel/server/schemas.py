"""The bodies the session API takes and answers with (camelCase JSON, as everywhere).

Records that already have a model (Session, Task, TraceEvent, Approval, AgentDefinition,
Fact, Artifact) are answered as they are; this module holds the requests and the envelopes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keel.blackboard.facts import Fact
from keel.guardrails.approvals import Approval
from keel.types import (
    AgentDefinition,
    Artifact,
    Budget,
    JsonObject,
    KeelModel,
    Session,
    Task,
    TraceEvent,
)

MAX_GOAL = 20_000
MAX_SEQ = 2**63 - 1
"""The largest event sequence number the store can hold (a BIGINT)."""
MAX_VERSION = 2**31 - 1
"""The largest agent version the store can hold (an INTEGER)."""


class CreateSession(KeelModel):
    """A team session (a goal) or a workflow session (a workflow)."""

    goal: str | None = Field(default=None, min_length=1, max_length=MAX_GOAL)
    agents: list[str | AgentDefinition] | None = Field(
        default=None,
        max_length=64,
        description="Registered agent names (latest version) or full definitions; default: "
        "every registered agent.",
    )
    workflow: JsonObject | None = Field(default=None, description="A workflow definition.")
    config: JsonObject | None = Field(
        default=None,
        description="Session config: workspace (under the server's workspace root), "
        "maxConcurrency, onTaskFailure, taskBudget, approvalTimeoutS, ...",
    )
    budget: Budget | None = None


class SessionList(KeelModel):
    sessions: list[Session]


class SendMessage(KeelModel):
    text: str = Field(min_length=1, max_length=MAX_GOAL)


class MessageSent(KeelModel):
    session_id: str
    number: int


class CancelRequest(KeelModel):
    task_id: str | None = Field(default=None, max_length=128)
    reason: str = Field(default="cancelled through the API", max_length=1000)


class Accepted(KeelModel):
    session_id: str
    status: Literal["accepted"] = "accepted"
    queued: bool | None = None


class TaskTreeNode(KeelModel):
    task: Task
    children: list[TaskTreeNode] = Field(default_factory=list)


class TaskTree(KeelModel):
    session_id: str
    tasks: list[TaskTreeNode]


class EventPage(KeelModel):
    events: list[TraceEvent]
    last_seq: int = Field(description="The session's last sequence number when read.")


class ApprovalList(KeelModel):
    approvals: list[Approval]


class AnswerApproval(KeelModel):
    allow: bool
    remember: bool = False
    note: str | None = Field(default=None, max_length=2000)


class AgentList(KeelModel):
    agents: list[AgentDefinition]


class RegisterAgents(KeelModel):
    agents: list[AgentDefinition] = Field(min_length=1, max_length=256)


class PolicyDocument(KeelModel):
    yaml: str = Field(max_length=1_000_000, description="The policy file's text.")


class FactList(KeelModel):
    facts: list[Fact]


class ArtifactList(KeelModel):
    artifacts: list[Artifact]


class Health(KeelModel):
    status: Literal["ok", "starting"]
    database: str
    workers: int
    subscribers: int
