"""The shell syntax the guardrails read: words, redirections, simple commands, pipelines
and scripts. Plain data, built by `shell_lex` and `shell_parse`; nothing here runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One word after quote removal. `$VAR` and `$(...)` keep their text; `dynamic` says
    the shell would expand something in it, so its value is unknown before it runs."""

    text: str
    quoted: bool = False
    dynamic: bool = False
    substitutions: tuple[Script, ...] = ()
    quoted_from: int | None = None
    """Where in `text` the first quoted part starts (`NAME='a b'` is still an assignment)."""


@dataclass(frozen=True, slots=True)
class Redirect:
    op: str
    target: Word
    fd: int | None = None
    body: str | None = None
    """The text of a here-document (`<<`) or here-string (`<<<`)."""

    @property
    def writes(self) -> bool:
        """Whether the target is a file opened for writing (not `2>&1` or `>&-`)."""
        if self.op in (">&", "<&"):
            return not (self.target.text.isdigit() or self.target.text == "-")
        return self.op in (">", ">>", ">|", "&>", "&>>", "<>")


@dataclass(frozen=True, slots=True)
class Command:
    """A simple command: words, its `NAME=value` prefixes and its redirections."""

    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()
    assignments: tuple[Word, ...] = ()

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(word.text for word in self.words)


@dataclass(frozen=True, slots=True)
class Pipeline:
    commands: tuple[Command, ...]
    background: bool = False
    depth: int = 0
    """How many `( ... )` subshells enclose it."""


@dataclass(frozen=True, slots=True)
class Script:
    pipelines: tuple[Pipeline, ...] = ()
    functions: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    expansions: tuple[Script, ...] = ()
    """Command substitutions outside any command, as in `for f in $(ls); do`."""
