"""The three kinds of pattern a policy rule uses, compiled to regular expressions.

- path globs, matched against a workspace-relative path (`src/app.py`) or, outside the
  workspace, an absolute one: `*` and `?` stay within one segment, `[abc]` is a class,
  `**` as a whole segment spans any number of directories (`**/.env` is `.env` at any
  depth, the root included), and a leading `~/` is the home directory;
- command patterns, matched against one simple command with single spaces between its
  words: `*` is any text (spaces included), `?` one character, `[abc]` a class;
- tool names or globs: `mcp__github__*`.

Every pattern is matched whole. A bad pattern raises `ValueError` with what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    literal: bool
    """No wildcards: the pattern names exactly one thing (more specific)."""

    def matches(self, subject: str) -> bool:
        return self.regex.fullmatch(subject) is not None


def path_glob(text: str, home: Path | None = None) -> Pattern:
    if not text:
        raise ValueError("the path glob is empty")
    if text == "~" or text.startswith("~/"):
        text = (home or Path.home()).as_posix() + text[1:]
    segments = text.split("/")
    if ".." in segments:
        raise ValueError(f"'{text}' has a '..' segment; paths are matched normalized")
    for segment in segments:
        if "**" in segment and segment != "**":
            raise ValueError(f"'**' must be a whole path segment, as in 'a/**/b' (in '{text}')")
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            piece, i = _wildcard(text, i, any_char="[^/]", any_run="[^/]*")
            out.append(piece)
    return Pattern(text, re.compile("".join(out)), literal=not _has_wildcards(text))


def command_pattern(text: str) -> Pattern:
    text = " ".join(text.split())
    if not text:
        raise ValueError("the command pattern is empty")
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            out.append(r"\s+")
            i += 1
        else:
            piece, i = _wildcard(text, i, any_char=".", any_run=".*")
            out.append(piece)
    return Pattern(text, re.compile("".join(out), re.DOTALL), literal=not _has_wildcards(text))


def tool_glob(text: str) -> Pattern:
    if not _TOOL_NAME.match(text):
        raise ValueError(f"'{text}' is not a tool name or glob such as 'run_command' or 'mcp__*'")
    out: list[str] = []
    i = 0
    while i < len(text):
        piece, i = _wildcard(text, i, any_char=".", any_run=".*")
        out.append(piece)
    return Pattern(text, re.compile("".join(out)), literal=not _has_wildcards(text))


def _wildcard(text: str, i: int, *, any_char: str, any_run: str) -> tuple[str, int]:
    """The regex for the wildcard or literal character at text[i], and the next index."""
    c = text[i]
    if c == "*":
        return any_run, i + 1
    if c == "?":
        return any_char, i + 1
    if c == "[":
        end = text.find("]", i + 2)
        if end < 0:
            raise ValueError(f"unclosed '[' in '{text}'")
        inner = text[i + 1 : end]
        if inner.startswith("!"):
            inner = "^" + inner[1:]
        return "[" + inner.replace("\\", "\\\\") + "]", end + 1
    return re.escape(c), i + 1


def _has_wildcards(text: str) -> bool:
    return any(c in text for c in "*?[")
