"""The risk scorer: a score from 0 to 100 for one tool call, with human-readable reasons.

`run_command` lines go to the shell scorer (`shell_risk`); the file tools are scored here:
paths outside the workspace, credential files, version-control internals, shell startup
files, and a write or edit that wipes most of an existing file. Tools the scorer does not
know (MCP tools) score 0: their permissions and the policy rules still apply.

The scale and how findings add up are in `findings`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.guardrails.findings import SECRET, Finding, Risk, combine
from keel.guardrails.path_risk import read_risk, write_risk
from keel.guardrails.paths import Location, Locator, Place
from keel.guardrails.shell_risk import analyze_command

__all__ = ["CallFacts", "Risk", "assess_call", "score_call"]

_secret = frozenset({SECRET})

READERS = frozenset({"read_file", "grep"})
LISTERS = frozenset({"list_dir", "glob"})
WRITERS = frozenset({"write_file", "edit_file"})
SECRET_SAMPLES = (".env", ".env.local", "id_rsa", "server.pem", "server.key", ".netrc")
ORDINARY_SAMPLES = ("main.py", "README.md", "index.ts", "Makefile")
WIPE_MIN_BYTES = 2000
"""A write that keeps less than a tenth of a file at least this big is a mass delete."""
WIPE_MIN_LINES = 40
"""An edit that removes at least this many lines and keeps less than a tenth is one too."""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the guardrails know about one call: its risk, and what policy rules match."""

    risk: Risk
    commands: tuple[tuple[str, str], ...] = ()
    """Each simple command of a `run_command` line: as written, and wrappers peeled off."""
    paths: tuple[str, ...] = field(default=())
    """The paths the call names: relative inside the workspace, absolute outside it."""


def score_call(
    tool: str, arguments: dict[str, Any], workspace: Path, *, home: Path | None = None
) -> Risk:
    """The risk of calling `tool` with `arguments` in `workspace`."""
    return assess_call(tool, arguments, workspace, home=home).risk


def assess_call(
    tool: str, arguments: dict[str, Any], workspace: Path, *, home: Path | None = None
) -> CallFacts:
    locator = Locator.for_workspace(workspace, home)
    command = arguments.get("command")
    if tool == "run_command" and isinstance(command, str):
        analysis = analyze_command(command, locator)
        return CallFacts(
            risk=combine(analysis.findings),
            commands=tuple(analysis.commands),
            paths=tuple(where.subject for where in analysis.paths),
        )
    path = arguments.get("pattern" if tool == "glob" else "path")
    if tool in READERS | LISTERS | WRITERS and isinstance(path, str):
        where = locator.locate(path or ".", locator.workspace)
        findings = _file_findings(tool, arguments, where, workspace)
        return CallFacts(risk=combine(f for f in findings if f), paths=(where.subject,))
    return CallFacts(risk=Risk())


def _file_findings(
    tool: str, arguments: dict[str, Any], where: Location, workspace: Path
) -> list[Finding | None]:
    via = f"{tool} {where.raw}"
    if tool in WRITERS:
        return [write_risk(where, via), _wipe(tool, arguments, where, workspace)]
    if where.place.outside:
        return [Finding(60 if tool in READERS else 40, f"reads outside the workspace ({via})")]
    if tool in READERS:
        return [read_risk(where, via), _secret_glob(arguments.get("glob"), via)]
    return []


def _secret_glob(pattern: object, via: str) -> Finding | None:
    """A grep `glob` that picks credential files (`.env*`, `*.pem`) but not source files."""
    if not isinstance(pattern, str):
        return None
    name = pattern.rsplit("/", 1)[-1]
    picks = [s for s in SECRET_SAMPLES if fnmatch.fnmatchcase(s, name)]
    if picks and not any(fnmatch.fnmatchcase(s, name) for s in ORDINARY_SAMPLES):
        return Finding(70, f"searches inside credential files ({picks[0]}) ({via})", _secret)
    return None


def _wipe(tool: str, arguments: dict[str, Any], where: Location, workspace: Path) -> Finding | None:
    """A write or an edit that deletes most of an existing file."""
    if where.place is not Place.INSIDE:
        return None
    if tool == "write_file":
        target = workspace / where.shown
        size = target.stat().st_size if target.is_file() else 0
        kept = len(str(arguments.get("content", "")).encode())
        if size >= WIPE_MIN_BYTES and kept * 10 < size:
            return Finding(45, f"replaces {where.shown} ({size} bytes) with {kept} bytes")
        return None
    old = str(arguments.get("old", "")).count("\n") + 1
    new = str(arguments.get("new", "")).count("\n") + 1 if arguments.get("new") else 0
    if old >= WIPE_MIN_LINES and new * 10 < old:
        return Finding(40, f"deletes {old} lines from {where.shown} ({tool})")
    return None
