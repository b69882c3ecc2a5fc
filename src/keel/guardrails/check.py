"""The one check every tool call passes before it runs: allow, ask or deny, with every
reason that contributed, a risk score (0-100) and the policy rule that decided, if any.

In order: permissions (a scope the agent is not granted is always a deny), then the policy
rules, then the risk thresholds. Deny rules and the deny threshold always win; an allow
rule lifts an ask that comes from the risk score (but not a deny); an ask rule asks even
when the score is low. Without a policy, the default one applies: no rules, ask from a
risk of 40, deny from 80. A crash of the risk scorer asks rather than allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from keel.guardrails.findings import Risk
from keel.guardrails.permissions import missing_scopes, required_level
from keel.guardrails.policy import Policy, PolicyCall, Rule
from keel.guardrails.risk import CallFacts, assess_call
from keel.types import AgentDefinition, JsonObject, KeelModel

Verdict = Literal["allow", "ask", "deny"]


class Decision(KeelModel):
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    risk: int = Field(default=0, ge=0, le=100)
    missing_scopes: list[str] = Field(default_factory=list)
    rule: str | None = None
    """The policy rule that decided, e.g. `agents.coder.rules[1]`."""


def check(
    agent: AgentDefinition,
    tool: str,
    scopes: tuple[str, ...],
    arguments: JsonObject,
    *,
    policy: Policy | None = None,
    workspace: Path | None = None,
) -> Decision:
    """Decide whether `agent` may call `tool` (needing `scopes`) with `arguments`."""
    policy = policy or Policy.default()
    thresholds = policy.thresholds_for(agent.name)
    facts = _assess(tool, arguments, workspace or Path.cwd(), thresholds.ask)
    risk = facts.risk
    missing = missing_scopes(agent, scopes)
    if missing:
        needs = ", ".join(f"{s} (level {required_level(s).value})" for s in missing)
        return Decision(
            verdict="deny",
            reasons=[
                f"agent '{agent.name}' is not granted {needs} needed by {tool}",
                *risk.reasons,
            ],
            risk=risk.score,
            missing_scopes=missing,
        )
    rule = policy.decide(agent.name, PolicyCall(tool, scopes, facts.commands, facts.paths))
    reasons = [f"granted {', '.join(scopes) or 'no scopes'}"]
    if rule is not None:
        reasons.append(_explain(rule))
    reasons += risk.reasons
    by_risk = thresholds.verdict(risk.score)
    verdict: Verdict
    decided: Rule | None = None
    if rule is not None and rule.action == "deny":
        verdict, decided = "deny", rule
    elif by_risk == "deny":
        verdict = "deny"
        reasons.append(f"risk {risk.score} reaches the deny threshold ({thresholds.deny})")
    elif rule is not None and rule.action == "allow":
        verdict, decided = "allow", rule
        if by_risk == "ask":
            reasons.append(
                f"risk {risk.score} reaches the ask threshold ({thresholds.ask}), "
                f"but {rule.id} allows the call"
            )
    elif rule is not None and rule.action == "ask":
        verdict, decided = "ask", rule
    elif by_risk == "ask":
        verdict = "ask"
        reasons.append(f"risk {risk.score} reaches the ask threshold ({thresholds.ask})")
    else:
        verdict = "allow"
    return Decision(
        verdict=verdict,
        reasons=reasons,
        risk=risk.score,
        rule=decided.id if decided else None,
    )


def _assess(tool: str, arguments: JsonObject, workspace: Path, ask: int) -> CallFacts:
    try:
        return assess_call(tool, arguments, workspace)
    except Exception as error:  # a scorer bug must fail closed, not open
        problem = f"the risk scorer failed ({type(error).__name__}: {error}); a person must look"
        return CallFacts(risk=Risk(score=max(ask, 1), reasons=[problem]))


def _explain(rule: Rule) -> str:
    because = f": {rule.reason}" if rule.reason else ""
    return f"policy {rule.id} ({rule.describe()}) matches{because}"
