"""`check`: permissions first (a missing scope is always a deny), then the policy rules,
then the risk thresholds; the decision carries every reason, the risk and the rule."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from guardrails_support import agent, policy, run

from keel.guardrails import Decision, check

READ_ONLY = [{"level": "L1", "scope": "file:read"}]


def test_a_missing_scope_is_a_deny_whatever_the_policy_says(workspace: Path) -> None:
    rules = policy("rules: [{action: allow}]")
    decision = check(
        agent("reader", READ_ONLY),
        "run_command",
        ("shell:exec",),
        {"command": "rm -rf ~"},
        policy=rules,
        workspace=workspace,
    )
    assert decision.verdict == "deny"
    assert decision.missing_scopes == ["shell:exec"]
    assert decision.rule is None
    assert decision.risk == 95
    assert decision.reasons[0] == (
        "agent 'reader' is not granted shell:exec (level L3) needed by run_command"
    )
    assert "recursive delete of the home directory (rm -rf ~)" in decision.reasons


def test_a_decision_is_camel_case_json_with_an_integer_risk(workspace: Path) -> None:
    decision = run(workspace, "git push origin main", policy("rules: [{action: ask}]"))
    assert decision.to_json() == {
        "verdict": "ask",
        "reasons": [
            "granted shell:exec",
            "policy rules[0] (ask every call) matches",
            "pushes to a remote, an external side effect (git push origin main)",
        ],
        "risk": 50,
        "missingScopes": [],
        "rule": "rules[0]",
    }
    assert Decision.model_validate(decision.to_json()) == decision


def test_risk_is_bounded_to_0_through_100() -> None:
    with pytest.raises(ValueError, match="less than or equal to 100"):
        Decision(verdict="allow", risk=101)


def test_the_risk_thresholds_decide_when_no_rule_matches(workspace: Path) -> None:
    assert run(workspace, "ls").verdict == "allow"
    asked = run(workspace, "pip install requests")
    assert (asked.verdict, asked.rule) == ("ask", None)
    assert asked.reasons[-1] == "risk 50 reaches the ask threshold (40)"
    denied = run(workspace, "rm -rf /")
    assert denied.reasons[-1] == "risk 100 reaches the deny threshold (80)"


def test_a_crash_of_the_risk_scorer_asks_instead_of_allowing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    # A bug cannot be provoked through the scorer's inputs, so stand one in for it.
    monkeypatch.setattr(importlib.import_module("keel.guardrails.check"), "assess_call", broken)
    decision = run(workspace, "ls")
    assert decision.verdict == "ask"
    assert "the risk scorer failed (RuntimeError: boom); a person must look" in decision.reasons
