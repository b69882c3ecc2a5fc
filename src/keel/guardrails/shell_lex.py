"""Splits a shell command line into words and operators, the way a POSIX shell does:
quotes (single, double, ANSI-C `$'..'`), backslashes, comments, operators, redirections
with their file descriptors, here-document bodies, and the `$(...)`, backticks and
`<(...)` substitutions inside words, whose contents are handed to a parser for nested
scripts. Problems (an unbalanced quote) are collected, never raised."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from keel.guardrails.shell_syntax import Script, Word

OPERATORS = frozenset({"&&", "||", ";;", "|&", "|", "&", ";", "(", ")"})
REDIRECTIONS = frozenset({"&>>", "&>", "<<<", "<<-", "<<", ">>", ">|", ">&", "<&", "<>", ">", "<"})
_EXPANSION_START = re.compile(r"[A-Za-z_0-9@*#?$!{-]")
_ANSI_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f"}


@dataclass(slots=True)
class Operator:
    text: str
    fd: int | None = None
    heredoc: Heredoc | None = None


@dataclass(slots=True)
class Heredoc:
    delimiter: str = ""
    strip_tabs: bool = False
    body: str | None = None
    expands: bool = True
    """An unquoted delimiter: `$(...)` and backticks in the body run, as in double quotes."""
    substitutions: tuple[Script, ...] = ()


@dataclass(slots=True)
class _WordBuilder:
    parts: list[str] = field(default_factory=list)
    started: bool = False
    quoted: bool = False
    quoted_from: int | None = None
    dynamic: bool = False
    substitutions: list[Script] = field(default_factory=list)

    def add(self, text: str, *, quoted: bool = False, dynamic: bool = False) -> None:
        if quoted and self.quoted_from is None:
            self.quoted_from = sum(len(part) for part in self.parts)
        self.parts.append(text)
        self.started = True
        self.quoted = self.quoted or quoted
        self.dynamic = self.dynamic or dynamic

    def build(self) -> Word:
        text = "".join(self.parts)
        return Word(text, self.quoted, self.dynamic, tuple(self.substitutions), self.quoted_from)


class Lexer:
    def __init__(self, source: str, nested: Callable[[str], Script]) -> None:
        self.source = source
        self.nested = nested
        self.i = 0
        self.tokens: list[Word | Operator] = []
        self.problems: list[str] = []
        self.word = _WordBuilder()
        self.pending: list[Heredoc] = []
        self.wants_delimiter: Heredoc | None = None

    def run(self) -> list[Word | Operator]:
        s = self.source
        while self.i < len(s):
            c = s[self.i]
            nxt = s[self.i + 1] if self.i + 1 < len(s) else ""
            if c in " \t\r":
                self.flush()
                self.i += 1
            elif c == "\n":
                self.flush()
                self.tokens.append(Operator(";"))
                self.i += 1
                self.read_heredoc_bodies()
            elif c == "#" and not self.word.started:
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            elif c == "\\":
                if nxt != "\n" and nxt:
                    self.word.add(nxt, quoted=True)
                self.i += 2
            elif c == "'":
                self.single_quoted()
            elif c == "$" and nxt == "'":
                self.ansi_c_quoted()
            elif c == '"':
                self.double_quoted()
            elif c == "$" or c == "`":
                self.expansion(quoted=False)
            elif c in "<>" and nxt == "(":
                self.process_substitution()
            elif not self.operator():
                self.word.add(c)
                self.i += 1
        self.flush()
        if self.wants_delimiter is not None:
            self.problems.append("a here-document (<<) has no delimiter")
        return self.tokens

    def flush(self) -> None:
        if not self.word.started:
            return
        word = self.word.build()
        self.word = _WordBuilder()
        if self.wants_delimiter is not None:
            self.wants_delimiter.delimiter = word.text
            self.wants_delimiter.expands = not word.quoted
            self.pending.append(self.wants_delimiter)
            self.wants_delimiter = None
        self.tokens.append(word)

    def operator(self) -> bool:
        s, i = self.source, self.i
        for size in (3, 2, 1):
            text = s[i : i + size]
            if text in REDIRECTIONS:
                fd = None
                digits = "".join(self.word.parts)
                if self.word.started and not self.word.quoted and digits.isdigit():
                    fd = int(digits)
                    self.word = _WordBuilder()
                self.flush()
                heredoc = Heredoc(strip_tabs=text == "<<-") if text in ("<<", "<<-") else None
                self.tokens.append(Operator(text, fd, heredoc))
                self.wants_delimiter = heredoc
                self.i += size
                return True
            if text in OPERATORS:
                self.flush()
                self.tokens.append(Operator(text))
                self.i += size
                return True
        return False

    def read_heredoc_bodies(self) -> None:
        s = self.source
        for heredoc in self.pending:
            lines: list[str] = []
            while self.i < len(s):
                end = s.find("\n", self.i)
                line = s[self.i :] if end < 0 else s[self.i : end]
                self.i = len(s) if end < 0 else end + 1
                if (line.lstrip("\t") if heredoc.strip_tabs else line) == heredoc.delimiter:
                    break
                lines.append(line)
            heredoc.body = "\n".join(lines)
            if heredoc.expands and ("$(" in heredoc.body or "`" in heredoc.body):
                heredoc.substitutions = self.expansions_in(heredoc.body)
        self.pending = []

    def expansions_in(self, body: str) -> tuple[Script, ...]:
        """The command substitutions of a here-document body, read as in double quotes."""
        quoted = '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'
        inner = Lexer(quoted, self.nested)
        words = [token for token in inner.run() if isinstance(token, Word)]
        self.problems.extend(inner.problems)
        return tuple(s for word in words for s in word.substitutions)

    def single_quoted(self) -> None:
        end = self.source.find("'", self.i + 1)
        if end < 0:
            self.problems.append("unbalanced single quote (')")
            end = len(self.source)
        self.word.add(self.source[self.i + 1 : end], quoted=True)
        self.i = end + 1

    def ansi_c_quoted(self) -> None:
        s = self.source
        j = self.i + 2
        out: list[str] = []
        while j < len(s) and s[j] != "'":
            if s[j] == "\\" and j + 1 < len(s):
                decoded, j = _ansi_c_escape(s, j + 1)
                out.append(decoded)
            else:
                out.append(s[j])
                j += 1
        if j >= len(s):
            self.problems.append("unbalanced $'...' quote")
        self.word.add("".join(out), quoted=True)
        self.i = j + 1

    def double_quoted(self) -> None:
        s = self.source
        self.i += 1
        self.word.add("", quoted=True)
        while self.i < len(s):
            c = s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.i + 1 < len(s) and s[self.i + 1] in '$`"\\\n':
                if s[self.i + 1] != "\n":
                    self.word.add(s[self.i + 1], quoted=True)
                self.i += 2
            elif c in "$`":
                self.expansion(quoted=True)
            else:
                self.word.add(c, quoted=True)
                self.i += 1
        self.problems.append('unbalanced double quote (")')

    def expansion(self, *, quoted: bool) -> None:
        """`$(...)`, backticks, `$((...))`, `${...}` and `$NAME`, at self.i."""
        s, i = self.source, self.i
        nxt = s[i + 1] if i + 1 < len(s) else ""
        if s[i] == "`":
            end = i + 1
            while end < len(s) and s[end] != "`":
                end += 2 if s[end] == "\\" else 1
            if end >= len(s):
                self.problems.append("unbalanced backtick (`)")
            inner = s[i + 1 : end].replace("\\`", "`")
            self.substitute(s[i : end + 1], inner, quoted)
            self.i = end + 1
        elif nxt == "(" and s[i + 2 : i + 3] == "(":
            end = _closing(s, i + 3, "(", ")")
            end = _closing(s, end + 1, "(", ")") if end < len(s) else end
            self.word.add(s[i : end + 1], quoted=quoted, dynamic=True)
            self.i = end + 1
        elif nxt == "(":
            end = _closing(s, i + 2, "(", ")")
            if end >= len(s):
                self.problems.append("unbalanced $( ... )")
            self.substitute(s[i : end + 1], s[i + 2 : end], quoted)
            self.i = end + 1
        elif nxt == "{":
            end = _closing(s, i + 2, "{", "}")
            if end >= len(s):
                self.problems.append("unbalanced ${ ... }")
            self.word.add(s[i : end + 1], quoted=quoted, dynamic=True)
            self.i = end + 1
        else:
            self.word.add("$", quoted=quoted, dynamic=bool(_EXPANSION_START.match(nxt)))
            self.i += 1

    def process_substitution(self) -> None:
        s, i = self.source, self.i
        end = _closing(s, i + 2, "(", ")")
        if end >= len(s):
            self.problems.append(f"unbalanced {s[i]}( ... )")
        self.substitute(s[i : end + 1], s[i + 2 : end], quoted=False)
        self.i = end + 1

    def substitute(self, written: str, inner: str, quoted: bool) -> None:
        nested = self.nested(inner)
        self.problems.extend(nested.problems)
        self.word.add(written, quoted=quoted, dynamic=True)
        self.word.substitutions.append(nested)


def _ansi_c_escape(s: str, j: int) -> tuple[str, int]:
    """Decode the escape after a backslash at s[j]; return it and the next index."""
    c = s[j]
    if c in _ANSI_C_ESCAPES:
        return _ANSI_C_ESCAPES[c], j + 1
    if c == "x":
        digits = re.match(r"[0-9a-fA-F]{1,2}", s[j + 1 :])
        if digits:
            return chr(int(digits.group(), 16)), j + 1 + len(digits.group())
    if c in "uU":
        digits = re.match(r"[0-9a-fA-F]{1,8}", s[j + 1 :])
        if digits:
            return chr(min(int(digits.group(), 16), 0x10FFFF)), j + 1 + len(digits.group())
    octal = re.match(r"[0-7]{1,3}", s[j:])
    if octal:
        return chr(int(octal.group(), 8)), j + len(octal.group())
    return c, j + 1


def _closing(s: str, start: int, opening: str, closing: str) -> int:
    """The index of the `closing` that balances an `opening` just before `start`, skipping
    quoted text; len(s) when there is none."""
    depth = 1
    j = start
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "'":
            end = s.find("'", j + 1)
            j = len(s) if end < 0 else end + 1
            continue
        if c == '"':
            j += 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            j += 1
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(s)
