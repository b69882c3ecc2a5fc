"""Policy rules: what each matcher matches, and which rule decides when several match
(the agent's own section, then more and more exact matchers, then deny > ask > allow)."""

from __future__ import annotations

from pathlib import Path

from guardrails_support import decide, policy, run

from keel.guardrails.policy import PolicyCall

SECRETS = policy(
    """
rules:
  - {action: deny, scope: "file:read", path: "**/.env", reason: secrets stay out of prompts}
  - {action: ask, command: "git push*"}
"""
)


def test_a_path_glob_with_double_star_matches_at_any_depth_including_the_root(
    workspace: Path,
) -> None:
    for path in (".env", "config/.env", "a/b/c/.env"):
        decision = decide(workspace, "read_file", {"path": path}, rules=SECRETS)
        assert (decision.verdict, decision.rule) == ("deny", "rules[0]"), path
    assert decide(workspace, "read_file", {"path": ".env.example"}, rules=SECRETS).rule is None
    assert decide(workspace, "read_file", {"path": "src/env.py"}, rules=SECRETS).rule is None


def test_a_deny_rule_names_the_rule_and_its_reason(workspace: Path) -> None:
    decision = decide(workspace, "read_file", {"path": "config/.env"}, rules=SECRETS)
    assert decision.rule == "rules[0]"
    assert (
        "policy rules[0] (deny scope 'file:read' path '**/.env') matches: "
        "secrets stay out of prompts"
    ) in decision.reasons


def test_a_scope_rule_only_matches_tools_that_need_the_scope(workspace: Path) -> None:
    decision = decide(workspace, "write_file", {"path": ".env", "content": "X=1"}, rules=SECRETS)
    assert decision.rule is None


def test_a_command_pattern_matches_each_simple_command_of_the_line(workspace: Path) -> None:
    for line in ("cd x && git push -f", "git push origin main", "make && git push; echo done"):
        decision = run(workspace, line, SECRETS)
        assert decision.rule == "rules[1]", line
        assert decision.verdict in ("ask", "deny")
    assert run(workspace, "git pull && git status", SECRETS).rule is None


def test_a_command_pattern_sees_through_wrappers_and_nested_shells(workspace: Path) -> None:
    rules = policy("rules: [{action: deny, command: 'git push*'}]")
    for line in (
        "sudo -u deploy git push",
        "timeout 30 git push origin main",
        "bash -c 'cd repo && git push'",
        "/usr/bin/git push",
        'echo "$(git push)"',
    ):
        assert run(workspace, line, rules).rule == "rules[0]", line


def test_a_deny_rule_on_a_path_applies_to_the_paths_a_command_names(workspace: Path) -> None:
    rules = policy("rules: [{action: deny, path: '**/.env'}]")
    assert run(workspace, "cat config/.env", rules).rule == "rules[0]"
    assert run(workspace, "echo KEY=1 > .env", rules).rule == "rules[0]"
    assert run(workspace, "cd config && cat .env", rules).rule == "rules[0]"
    assert run(workspace, "cat README.md", rules).rule is None


def test_a_path_rule_matches_absolute_paths_outside_the_workspace(workspace: Path) -> None:
    rules = policy("rules: [{action: deny, path: '/etc/**'}]")
    assert run(workspace, "cat /etc/hostname", rules).rule == "rules[0]"
    assert run(workspace, "cd / && cat etc/hostname", rules).rule == "rules[0]"
    assert run(workspace, "cat etc/hostname", rules).rule is None


def test_an_allow_rule_must_cover_every_simple_command(workspace: Path) -> None:
    rules = policy("rules: [{action: allow, command: 'npm install*'}]")
    assert run(workspace, "npm install left-pad", rules).verdict == "allow"
    assert run(workspace, "cd web && npm install left-pad", rules).verdict == "allow"
    mixed = run(workspace, "npm install left-pad && pip install requests", rules)
    assert (mixed.verdict, mixed.rule) == ("ask", None)


def test_an_allow_rule_lifts_an_ask_from_the_risk_score(workspace: Path) -> None:
    assert run(workspace, "pip install requests").verdict == "ask"
    rules = policy("rules: [{action: allow, command: 'pip install *'}]")
    decision = run(workspace, "pip install requests", rules)
    assert (decision.verdict, decision.rule, decision.risk) == ("allow", "rules[0]", 50)
    assert (
        "risk 50 reaches the ask threshold (40), but rules[0] allows the call" in decision.reasons
    )


def test_an_allow_rule_never_lifts_a_deny_from_the_risk_score(workspace: Path) -> None:
    rules = policy("rules: [{action: allow, tool: run_command}]")
    decision = run(workspace, "rm -rf ~", rules)
    assert (decision.verdict, decision.rule) == ("deny", None)
    assert "risk 95 reaches the deny threshold (80)" in decision.reasons


def test_an_ask_rule_asks_even_when_the_risk_is_low(workspace: Path) -> None:
    rules = policy("rules: [{action: ask, command: 'make deploy*'}]")
    decision = run(workspace, "make deploy", rules)
    assert (decision.verdict, decision.rule, decision.risk) == ("ask", "rules[0]", 0)


def test_on_equal_specificity_deny_beats_ask_beats_allow(workspace: Path) -> None:
    rules = policy(
        """
rules:
  - {action: allow, command: "git push*"}
  - {action: ask, command: "git push*"}
  - {action: deny, command: "git push*"}
"""
    )
    assert run(workspace, "git push", rules).rule == "rules[2]"
    two = policy("rules: [{action: allow, tool: read_file}, {action: ask, tool: read_file}]")
    assert decide(workspace, "read_file", {"path": "a.txt"}, rules=two).rule == "rules[1]"


def test_a_more_specific_rule_beats_a_general_one_whatever_its_action(workspace: Path) -> None:
    rules = policy(
        """
rules:
  - {action: deny, tool: run_command}
  - {action: allow, command: "pytest*"}
  - {action: ask, tool: run_command, command: "pytest --pdb*"}
"""
    )
    assert run(workspace, "ls", rules).rule == "rules[0]"
    assert run(workspace, "pytest -q", rules).rule == "rules[1]"
    assert run(workspace, "pytest --pdb tests", rules).rule == "rules[2]"


def test_an_exact_matcher_beats_a_wildcard_one(workspace: Path) -> None:
    rules = policy(
        """
rules:
  - {action: deny, path: "config/*"}
  - {action: allow, path: "config/app.yaml"}
"""
    )
    assert decide(workspace, "read_file", {"path": "config/app.yaml"}, rules=rules).rule == (
        "rules[1]"
    )
    assert decide(workspace, "read_file", {"path": "config/db.yaml"}, rules=rules).rule == (
        "rules[0]"
    )


def test_an_agents_own_section_beats_the_global_rules(workspace: Path) -> None:
    rules = policy(
        """
rules:
  - {action: ask, command: "git push*"}
agents:
  releaser:
    rules:
      - {action: allow, command: "git push*"}
"""
    )
    assert run(workspace, "git push origin main", rules, name="coder").verdict == "ask"
    decision = run(workspace, "git push origin main", rules, name="releaser")
    assert (decision.verdict, decision.rule) == ("allow", "agents.releaser.rules[0]")


def test_per_agent_thresholds_change_what_the_risk_score_means(workspace: Path) -> None:
    rules = policy("agents: {installer: {thresholds: {ask: 60}}}")
    assert run(workspace, "pip install requests", rules, name="coder").verdict == "ask"
    assert run(workspace, "pip install requests", rules, name="installer").verdict == "allow"


def test_a_tool_glob_matches_families_of_tools() -> None:
    rules = policy("rules: [{action: deny, tool: 'mcp__github__*'}]")
    assert rules.decide("coder", PolicyCall(tool="mcp__github__delete_repo")) is not None
    assert rules.decide("coder", PolicyCall(tool="mcp__slack__post")) is None


def test_a_wildcard_scope_covers_every_action_of_its_resource() -> None:
    rules = policy("rules: [{action: ask, scope: 'file:*'}]")
    assert rules.decide("coder", PolicyCall("write_file", ("file:write",))) is not None
    assert rules.decide("coder", PolicyCall("run_command", ("shell:exec",))) is None


def test_a_rule_with_no_matchers_matches_every_call() -> None:
    rules = policy("agents: {reviewer: {rules: [{action: deny}]}}")
    rule = rules.decide("reviewer", PolicyCall("read_file", ("file:read",), paths=("a",)))
    assert rule is not None
    assert rule.describe() == "deny every call"
    assert rules.decide("coder", PolicyCall("read_file")) is None
