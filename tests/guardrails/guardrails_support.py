"""Builders shared by the guardrails tests: agents, policies, and `check` in a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from keel.guardrails import Decision, Policy, check
from keel.types import AgentDefinition

ALL_SCOPES = [
    {"level": "L4", "scope": scope}
    for scope in ("file:*", "shell:*", "network:*", "git:*", "package:*")
]
TOOL_SCOPES = {
    "read_file": ("file:read",),
    "list_dir": ("file:read",),
    "glob": ("file:read",),
    "grep": ("file:read",),
    "write_file": ("file:write",),
    "edit_file": ("file:write",),
    "run_command": ("shell:exec",),
}


def agent(name: str = "coder", permissions: list[dict[str, str]] | None = None) -> AgentDefinition:
    return AgentDefinition(
        name=name, role="worker", model="scripted:x", permissions=permissions or ALL_SCOPES
    )


def policy(text: str) -> Policy:
    return Policy.from_data(yaml.safe_load(text), source="policy.yaml")


def decide(
    workspace: Path,
    tool: str,
    arguments: dict[str, Any],
    *,
    rules: Policy | None = None,
    name: str = "coder",
) -> Decision:
    return check(agent(name), tool, TOOL_SCOPES[tool], arguments, policy=rules, workspace=workspace)


def run(
    workspace: Path, command: str, rules: Policy | None = None, name: str = "coder"
) -> Decision:
    return decide(workspace, "run_command", {"command": command}, rules=rules, name=name)
