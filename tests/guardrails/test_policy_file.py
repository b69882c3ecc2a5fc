"""Policy files: the format, the defaults, and a clear error for every kind of mistake,
naming the file and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import KeelError
from keel.guardrails import Policy, PolicyError, Thresholds

GOOD = """\
thresholds: {ask: 30, deny: 90}
rules:
  - {action: deny, scope: "file:read", path: "**/.env", reason: secrets stay out of prompts}
  - {action: ask, tool: run_command, command: "git push*"}
agents:
  coder:
    thresholds: {ask: 50}
    rules:
      - {action: allow, command: "npm install*"}
  reviewer:
    rules:
      - {action: deny, scope: "file:write"}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_policy_file_loads_with_global_and_per_agent_sections(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD))
    assert policy.thresholds == Thresholds(ask=30, deny=90)
    assert [rule.id for rule in policy.rules] == ["rules[0]", "rules[1]"]
    assert policy.rules[0].action == "deny"
    assert policy.rules[0].reason == "secrets stay out of prompts"
    assert policy.agents["coder"].rules[0].id == "agents.coder.rules[0]"
    assert policy.agents["reviewer"].rules[0].describe() == "deny scope 'file:write'"


def test_agent_thresholds_override_the_global_ones_key_by_key(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, GOOD))
    assert policy.thresholds_for("coder") == Thresholds(ask=50, deny=90)
    assert policy.thresholds_for("reviewer") == Thresholds(ask=30, deny=90)
    assert policy.thresholds_for("nobody") == Thresholds(ask=30, deny=90)


def test_the_default_policy_has_no_rules_and_asks_from_40_and_denies_from_80() -> None:
    policy = Policy.default()
    assert policy.rules == ()
    assert policy.thresholds == Thresholds(ask=40, deny=80)
    assert [policy.thresholds.verdict(s) for s in (0, 39, 40, 79, 80, 100)] == [
        "allow", "allow", "ask", "ask", "deny", "deny",
    ]  # fmt: skip


def test_an_empty_file_is_the_default_policy(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, "# nothing yet\n"))
    assert policy.rules == ()
    assert policy.thresholds == Thresholds()


def test_a_tilde_path_glob_is_the_home_directory(tmp_path: Path) -> None:
    text = "rules: [{action: deny, path: '~/.ssh/**'}]"
    policy = Policy.load(write(tmp_path, text), home=Path("/home/me"))
    assert policy.rules[0].path is not None
    assert policy.rules[0].path.matches("/home/me/.ssh/id_rsa")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[1, 2]",
            "policy.yaml: the policy must be a mapping with thresholds, rules, agents and sandbox",
        ),
        (
            "rulez: []",
            "policy.yaml: unknown key 'rulez' (known: thresholds, rules, agents, sandbox)",
        ),
        ("rules: {action: deny}", "policy.yaml: rules: must be a list of rules"),
        ("rules: [deny]", "policy.yaml: rules[0]: a rule must be a mapping such as"),
        (
            "rules: [{action: deny}, {action: ask}, {action: block}]",
            "policy.yaml: rules[2].action: must be allow, ask or deny (got 'block')",
        ),
        ("rules: [{path: x}]", "policy.yaml: rules[0].action: missing; write allow, ask or deny"),
        (
            "rules: [{action: deny, paths: x}]",
            "policy.yaml: rules[0]: unknown key 'paths' "
            "(known: action, tool, scope, path, command, reason)",
        ),
        (
            "rules: [{action: deny, path: 7}]",
            "policy.yaml: rules[0].path: must be a string (got 7)",
        ),
        (
            "rules: [{action: deny, path: 'src/**.py'}]",
            "policy.yaml: rules[0].path: '**' must be a whole path segment",
        ),
        ("rules: [{action: deny, path: 'a/[bc'}]", "policy.yaml: rules[0].path: unclosed '['"),
        ("rules: [{action: deny, path: ''}]", "policy.yaml: rules[0].path: the path glob is empty"),
        (
            "rules: [{action: deny, path: '../x'}]",
            "policy.yaml: rules[0].path: '../x' has a '..' segment",
        ),
        (
            "rules: [{action: ask, command: 'rm [-rf'}]",
            "policy.yaml: rules[0].command: unclosed '[' in 'rm [-rf'",
        ),
        (
            "rules: [{action: ask, command: '  '}]",
            "policy.yaml: rules[0].command: the command pattern is empty",
        ),
        (
            "rules: [{action: ask, tool: 'run command'}]",
            "policy.yaml: rules[0].tool: 'run command' is not a tool name or glob",
        ),
        (
            "rules: [{action: ask, tool: read_file, command: 'cat*'}]",
            "policy.yaml: rules[0].command: applies only to run_command, but the rule is for "
            "tool 'read_file'",
        ),
        (
            "rules: [{action: deny, scope: shell}]",
            "policy.yaml: rules[0].scope: 'shell' is not a scope; write 'resource:action'",
        ),
        (
            "thresholds: {ask: 90, deny: 80}",
            "policy.yaml: thresholds: ask (90) is above deny (80)",
        ),
        (
            "thresholds: {ask: 101}",
            "policy.yaml: thresholds.ask: must be a whole number from 0 to 100 (got 101)",
        ),
        (
            "thresholds: {deny: -1}",
            "policy.yaml: thresholds.deny: must be a whole number from 0 to 100 (got -1)",
        ),
        (
            "thresholds: {ask: 0.5}",
            "policy.yaml: thresholds.ask: must be a whole number from 0 to 100 (got 0.5)",
        ),
        (
            "thresholds: {ask: true}",
            "policy.yaml: thresholds.ask: must be a whole number from 0 to 100 (got True)",
        ),
        ("thresholds: {warn: 3}", "policy.yaml: thresholds: unknown key 'warn' (known: ask, deny)"),
        ("agents: [coder]", "policy.yaml: agents: must be a mapping of agent names to sections"),
        ("agents: {'bad name': {}}", "policy.yaml: agents.bad name: is not an agent name"),
        (
            "agents: {coder: {rulez: []}}",
            "policy.yaml: agents.coder: unknown key 'rulez' (known: rules, thresholds)",
        ),
        (
            "agents: {coder: {rules: [{action: allow}, {action: nope}]}}",
            "policy.yaml: agents.coder.rules[1].action: must be allow, ask or deny (got 'nope')",
        ),
        (
            "thresholds: {ask: 40, deny: 80}\nagents: {coder: {thresholds: {ask: 85}}}",
            "policy.yaml: agents.coder.thresholds: ask (85) is above deny (80)",
        ),
        ("rules: [{action: deny", "policy.yaml: is not valid YAML at line"),
    ],
)
def test_a_bad_policy_file_is_an_error_naming_the_file_and_the_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        Policy.load(path)
    assert str(caught.value).startswith(message.replace("policy.yaml", str(path)))


def test_a_policy_error_is_a_keel_error_the_cli_reports_and_exits_2(tmp_path: Path) -> None:
    with pytest.raises(KeelError) as caught:
        Policy.load(write(tmp_path, "rules: [{action: block}]"))
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, PolicyError)
    assert caught.value.where == "rules[0].action"


def test_a_project_policy_is_its_keel_policy_yaml_or_the_default(tmp_path: Path) -> None:
    assert Policy.for_project(tmp_path).source == "the default policy"
    write(tmp_path, GOOD, name="keel.policy.yaml")
    assert Policy.for_project(tmp_path).thresholds == Thresholds(ask=30, deny=90)
    write(tmp_path, "rules: [{action: maybe}]", name="keel.policy.yaml")
    with pytest.raises(PolicyError, match=r"keel\.policy\.yaml: rules\[0\]\.action"):
        Policy.for_project(tmp_path)


def test_a_missing_policy_file_is_an_error_not_the_default(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        Policy.load(tmp_path / "absent.yaml")
