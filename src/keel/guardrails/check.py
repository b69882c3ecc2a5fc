"""The one check every tool call passes before it runs: allow, ask or deny, with reasons
and a risk score. Today it enforces permission levels and scopes; policy rules and risk
scoring join here without changing its callers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keel.guardrails.permissions import missing_scopes, required_level
from keel.types import AgentDefinition, JsonObject, KeelModel

Verdict = Literal["allow", "ask", "deny"]


class Decision(KeelModel):
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    risk: float = Field(default=0.0, ge=0.0, le=1.0)
    missing_scopes: list[str] = Field(default_factory=list)


def check(
    agent: AgentDefinition, tool: str, scopes: tuple[str, ...], arguments: JsonObject
) -> Decision:
    """Decide whether `agent` may call `tool` (needing `scopes`) with `arguments`."""
    missing = missing_scopes(agent, scopes)
    if missing:
        needs = ", ".join(f"{s} (level {required_level(s).value})" for s in missing)
        return Decision(
            verdict="deny",
            reasons=[f"agent '{agent.name}' is not granted {needs} needed by {tool}"],
            risk=1.0,
            missing_scopes=missing,
        )
    granted = ", ".join(scopes) or "no scopes"
    return Decision(verdict="allow", reasons=[f"granted {granted}"])
