"""What the gateway shows of Keel's records: sessions, task trees, events, approvals and
artifacts as JSON-ready models, camelCase on the wire like the rest of Keel's API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from keel.guardrails.approvals import Approval
from keel.registry import TaskNode
from keel.types import Artifact, Session, TraceEvent


class View(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )


def artifact_uri(session_id: str, artifact_id: str) -> str:
    return f"keel://sessions/{session_id}/artifacts/{artifact_id}"


class ApprovalView(View):
    approval_id: str
    task_id: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    risk: int
    reasons: list[str]
    status: str

    @staticmethod
    def of(approval: Approval) -> ApprovalView:
        return ApprovalView(
            approval_id=approval.id,
            task_id=approval.task_id,
            agent=approval.agent,
            tool=approval.tool,
            arguments=approval.arguments,
            risk=approval.risk,
            reasons=approval.reasons,
            status=approval.status,
        )


class ArtifactView(View):
    artifact_id: str
    name: str
    type: str
    uri: str = Field(description="Read it as an MCP resource.")

    @staticmethod
    def of(session_id: str, artifact: Artifact) -> ArtifactView:
        return ArtifactView(
            artifact_id=artifact.id,
            name=artifact.name,
            type=artifact.type.value,
            uri=artifact_uri(session_id, artifact.id),
        )


class SessionView(View):
    session_id: str
    goal: str
    status: str = Field(description="pending, running, done, failed or cancelled")
    final_answer: str | None = None
    created_at: datetime
    updated_at: datetime
    pending_approvals: list[ApprovalView] = Field(default_factory=list)
    artifacts: list[ArtifactView] = Field(default_factory=list)
    run_error: str | None = Field(
        default=None, description="Why the run stopped before the session ended, if it did."
    )

    @staticmethod
    def of(
        session: Session,
        approvals: list[Approval] | None = None,
        artifacts: list[Artifact] | None = None,
        run_error: str | None = None,
    ) -> SessionView:
        return SessionView(
            session_id=session.id,
            goal=session.goal,
            status=session.status.value,
            final_answer=session.final_answer,
            created_at=session.created_at,
            updated_at=session.updated_at,
            pending_approvals=[ApprovalView.of(a) for a in approvals or []],
            artifacts=[ArtifactView.of(session.id, a) for a in artifacts or []],
            run_error=run_error,
        )


class SessionList(View):
    sessions: list[SessionView]


class TaskView(View):
    task_id: str
    goal: str
    status: str
    agent: str | None = None
    output: str | None = None
    children: list[TaskView] = Field(default_factory=list)

    @staticmethod
    def of(node: TaskNode) -> TaskView:
        task = node.task
        output = (task.output or {}).get("text")
        return TaskView(
            task_id=task.id,
            goal=task.goal,
            status=task.status.value,
            agent=task.assigned_agent,
            output=output if isinstance(output, str) else None,
            children=[TaskView.of(child) for child in node.children],
        )


class TaskTree(View):
    session_id: str
    status: str
    tasks: list[TaskView]


class EventView(View):
    seq: int
    type: str
    actor: str
    task_id: str | None = None
    payload: dict[str, Any]
    timestamp: datetime

    @staticmethod
    def of(event: TraceEvent) -> EventView:
        return EventView(
            seq=event.seq,
            type=event.type,
            actor=event.actor,
            task_id=event.task_id,
            payload=event.payload,
            timestamp=event.timestamp,
        )


class EventPage(View):
    session_id: str
    events: list[EventView]
    next_after: int = Field(description="Pass as `after` to read the events that follow.")
