"""What a session's `config` may hold, validated when the session is created."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from keel.errors import ConfigError
from keel.guardrails import Policy
from keel.models import ModelSettings, ProviderSettings
from keel.types import Budget, JsonObject, KeelModel, parse_model


class SessionConfig(KeelModel):
    flow: Literal["team", "functions", "workflow"] = "team"
    workflow: JsonObject | None = Field(
        default=None, description="The workflow a 'workflow' session runs, as validated."
    )
    workspace: str | None = Field(
        default=None, description="Directory the agents' tools work in (absolute)."
    )
    scripted_latency_ms: float = Field(default=0, ge=0)
    model_timeout_s: float = Field(default=120, gt=0)
    model_max_attempts: int = Field(default=4, ge=1, le=20)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    task_budget: Budget | None = None
    policy: str | None = Field(
        default=None,
        description="The policy file; default: keel.policy.yaml at the workspace root, if any.",
    )
    isolate: bool = Field(
        default=True,
        description="Work in a worktree of the workspace's repository (or snapshot a plain "
        "directory in place); false: work on the directory as it is, without snapshots.",
    )
    project: str | None = Field(
        default=None,
        description="What the project memory scope is shared across; default: the workspace.",
    )
    approval_timeout_s: float = Field(
        default=3600, gt=0, description="How long an approval may wait; then it is a deny."
    )
    max_concurrency: int = Field(default=4, ge=1, le=256, description="Nodes run at once.")
    on_task_failure: Literal["fail_fast", "wait_all"] = Field(
        default="fail_fast",
        description="fail_fast: start nothing new once a task fails; wait_all: let the "
        "tasks that do not depend on it finish first.",
    )

    @staticmethod
    def read(data: JsonObject | None) -> SessionConfig:
        return parse_model(SessionConfig, data or {}, "session config")

    def model_settings(self) -> ModelSettings:
        return ModelSettings(
            scripted_latency_s=self.scripted_latency_ms / 1000,
            timeout_s=self.model_timeout_s,
            max_attempts=self.model_max_attempts,
            providers=self.providers,
        )

    def resolved(self) -> SessionConfig:
        """This config with its workspace made absolute; a missing workspace is an error."""
        if self.workspace is None:
            return self
        workspace = Path(self.workspace).expanduser().resolve()
        if not workspace.is_dir():
            raise ConfigError(f"the workspace {workspace} is not a directory")
        update = {"workspace": str(workspace)}
        if self.policy is not None:
            update["policy"] = str(Path(self.policy).expanduser().resolve())
        return self.model_copy(update=update)

    def load_policy(self) -> Policy:
        """The session's policy; a bad file raises `PolicyError`: Keel does not run unguarded."""
        if self.policy is not None:
            return Policy.load(self.policy)
        if self.workspace is not None:
            return Policy.for_project(Path(self.workspace))
        return Policy.default()

    def project_id(self) -> str | None:
        """The project's id: as configured, else derived from the workspace's path."""
        if self.project is not None:
            return self.project
        if self.workspace is None:
            return None
        digest = hashlib.sha256(self.workspace.encode()).hexdigest()[:12]
        return f"{Path(self.workspace).name}-{digest}"

    def workspace_path(self) -> Path | None:
        return Path(self.workspace) if self.workspace else None
