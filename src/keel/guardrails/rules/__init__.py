"""The command rules: what each program does that is risky, one module per family of
programs. `rule_for(name)` finds the rule of a program; `nested_for(name)` the commands a
program runs itself (`find -exec`, `ssh host cmd`, `su -c`), which are scored too."""

from __future__ import annotations

from collections.abc import Callable

from keel.guardrails.invocation import Invocation, Rule
from keel.guardrails.rules import files, git, network, packages, services, system

RULES: dict[str, Rule] = {
    **files.RULES,
    **network.RULES,
    **packages.RULES,
    **services.RULES,
    **system.RULES,
    "git": git.git,
}

Nested = Callable[[Invocation], list[str]]
NESTED: dict[str, Nested] = {
    "find": files.find_commands,
    "ssh": network.ssh_commands,
    "su": system.su_commands,
}


def rule_for(name: str) -> Rule | None:
    if name.startswith("mkfs"):
        return files.disk_tool
    return RULES.get(name)


def nested_for(name: str) -> Nested | None:
    return NESTED.get(name)
