"""What may happen: permission levels and scopes, the project's policy rules, the risk
scorer, and the one check before every tool call that combines them."""

from __future__ import annotations

from keel.guardrails.check import Decision, Verdict, check
from keel.guardrails.findings import Risk
from keel.guardrails.permissions import SCOPE_LEVELS, grants, missing_scopes, required_level
from keel.guardrails.policy import POLICY_FILE, Policy, PolicyError, Rule, Thresholds
from keel.guardrails.risk import score_call

__all__ = [
    "POLICY_FILE",
    "SCOPE_LEVELS",
    "Decision",
    "Policy",
    "PolicyError",
    "Risk",
    "Rule",
    "Thresholds",
    "Verdict",
    "check",
    "grants",
    "missing_scopes",
    "required_level",
    "score_call",
]
