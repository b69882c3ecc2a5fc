"""A shell parser for risk scoring: it splits a command line into pipelines of simple
commands with their redirections, the way a POSIX shell reads them, and runs nothing.

It knows quotes (single, double, ANSI-C `$'..'`), backslashes, comments, `|`, `|&`, `&&`,
`||`, `;`, `&`, newlines, `( ... )` and `{ ...; }` groups, `$(...)`, backticks and
`<(...)` / `>(...)` (whose contents it parses too), redirections (`>`, `>>`, `2>`, `&>`,
`<`, `<<` here-documents, `<<<`) and function definitions. It never expands variables or
globs: a word keeps `$HOME` or `*` as written and says whether it is `dynamic`.

`shlex` alone is not enough here: it forgets whether `$(rm -rf ~)` sat in double quotes
(it runs) or single quotes (it does not), and reads `2>file` like `2 >file`.

What it cannot parse (an unbalanced quote or parenthesis) is reported in `problems`, never
raised: for the guardrails a command line that does not parse is itself a finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_DEPTH = 8
"""Nesting of `$(...)` inside `$(...)` beyond which the parser stops and reports it."""

_OPERATORS = frozenset({"&&", "||", ";;", "|&", "|", "&", ";", "(", ")"})
_REDIRECTIONS = frozenset({"&>>", "&>", "<<<", "<<-", "<<", ">>", ">|", ">&", "<&", "<>", ">", "<"})
_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "{", "}", "!", "esac"}
)
_HEADERS = frozenset({"for", "select", "case"})
"""Reserved words whose line up to the next `;` or newline is not a command (its
substitutions still run: they go to `Script.expansions`)."""

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_EXPANSION_START = re.compile(r"[A-Za-z_0-9@*#?$!{-]")
_ANSI_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f"}


@dataclass(frozen=True, slots=True)
class Word:
    """One word after quote removal. `$VAR` and `$(...)` keep their text; `dynamic` says
    the shell would expand something in it, so its value is unknown before it runs."""

    text: str
    quoted: bool = False
    dynamic: bool = False
    substitutions: tuple[Script, ...] = ()


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


def parse(source: str, *, depth: int = 0) -> Script:
    """Parse `source` into pipelines; never raises, reports what it cannot read."""
    if depth > MAX_DEPTH:
        return Script(problems=(f"command substitutions nested more than {MAX_DEPTH} deep",))
    lexer = _Lexer(source, depth)
    tokens = lexer.run()
    return _Parser(tokens, lexer.problems).run()


# -- lexing ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Op:
    text: str
    fd: int | None = None
    heredoc: _Heredoc | None = None


@dataclass(slots=True)
class _Heredoc:
    delimiter: str = ""
    strip_tabs: bool = False
    body: str | None = None


@dataclass(slots=True)
class _WordBuilder:
    parts: list[str] = field(default_factory=list)
    started: bool = False
    quoted: bool = False
    dynamic: bool = False
    substitutions: list[Script] = field(default_factory=list)

    def add(self, text: str, *, quoted: bool = False, dynamic: bool = False) -> None:
        self.parts.append(text)
        self.started = True
        self.quoted = self.quoted or quoted
        self.dynamic = self.dynamic or dynamic

    def build(self) -> Word:
        return Word("".join(self.parts), self.quoted, self.dynamic, tuple(self.substitutions))


class _Lexer:
    def __init__(self, source: str, depth: int) -> None:
        self.source = source
        self.depth = depth
        self.i = 0
        self.tokens: list[Word | _Op] = []
        self.problems: list[str] = []
        self.word = _WordBuilder()
        self.pending: list[_Heredoc] = []
        self.wants_delimiter: _Heredoc | None = None

    def run(self) -> list[Word | _Op]:
        s = self.source
        while self.i < len(s):
            c = s[self.i]
            nxt = s[self.i + 1] if self.i + 1 < len(s) else ""
            if c in " \t\r":
                self.flush()
                self.i += 1
            elif c == "\n":
                self.flush()
                self.tokens.append(_Op(";"))
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
            self.pending.append(self.wants_delimiter)
            self.wants_delimiter = None
        self.tokens.append(word)

    def operator(self) -> bool:
        s, i = self.source, self.i
        for size in (3, 2, 1):
            text = s[i : i + size]
            if text in _REDIRECTIONS:
                fd = None
                digits = "".join(self.word.parts)
                if self.word.started and not self.word.quoted and digits.isdigit():
                    fd = int(digits)
                    self.word = _WordBuilder()
                self.flush()
                heredoc = _Heredoc(strip_tabs=text == "<<-") if text in ("<<", "<<-") else None
                self.tokens.append(_Op(text, fd, heredoc))
                self.wants_delimiter = heredoc
                self.i += size
                return True
            if text in _OPERATORS:
                self.flush()
                self.tokens.append(_Op(text))
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
        self.pending = []

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
        nested = parse(inner, depth=self.depth + 1)
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


# -- parsing --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Word | _Op], problems: list[str]) -> None:
        self.tokens = tokens
        self.problems = problems
        self.pipelines: list[Pipeline] = []
        self.functions: list[str] = []
        self.commands: list[Command] = []
        self.words: list[Word] = []
        self.assignments: list[Word] = []
        self.redirects: list[Redirect] = []
        self.header = False
        self.naming = False
        self.cases = 0
        self.depth = 0
        self.expansions: list[Script] = []

    def run(self) -> Script:
        i = 0
        tokens = self.tokens
        while i < len(tokens):
            token = tokens[i]
            if isinstance(token, Word):
                if self.is_function_definition(i):
                    self.functions.append(token.text)
                    i += 3
                    continue
                self.add_word(token)
            elif token.text in _REDIRECTIONS:
                target = tokens[i + 1] if i + 1 < len(tokens) else None
                if not isinstance(target, Word):
                    self.problems.append(f"the redirection {token.text} has no target")
                else:
                    body = token.heredoc.body if token.heredoc else None
                    if token.text == "<<<":
                        body = target.text
                    self.redirects.append(Redirect(token.text, target, token.fd, body))
                    i += 1
            elif token.text in ("|", "|&"):
                self.end_command()
            elif token.text == "(":
                if self.words or self.commands:
                    self.problems.append("unexpected '(' inside a command")
                self.end_pipeline()
                self.depth += 1
            elif token.text == ")" and self.cases and not self.depth:
                self.words, self.redirects, self.assignments = [], [], []  # a case pattern
                self.header = False
            elif token.text == ")":
                self.end_pipeline()
                if self.depth == 0:
                    self.problems.append("unbalanced ')'")
                self.depth = max(0, self.depth - 1)
            else:  # && || ; ;; &
                self.end_pipeline(background=token.text == "&")
            i += 1
        self.end_pipeline()
        if self.depth:
            self.problems.append("unbalanced '('")
        return Script(
            tuple(self.pipelines),
            tuple(self.functions),
            tuple(self.problems),
            tuple(self.expansions),
        )

    def is_function_definition(self, i: int) -> bool:
        after = self.tokens[i + 1 : i + 3]
        return (
            not self.words
            and len(after) == 2
            and isinstance(after[0], _Op)
            and after[0].text == "("
            and isinstance(after[1], _Op)
            and after[1].text == ")"
        )

    def add_word(self, word: Word) -> None:
        if self.header:
            self.expansions.extend(word.substitutions)
            return
        if self.naming:
            self.functions.append(word.text)
            self.naming = False
            return
        if not self.words and not word.quoted:
            if word.text == "esac":
                self.cases = max(0, self.cases - 1)
            if word.text in _RESERVED:
                return
            if word.text in _HEADERS:
                self.header = True
                self.cases += word.text == "case"
                return
            if word.text == "function":
                self.naming = True
                return
            if _ASSIGNMENT.match(word.text):
                self.assignments.append(word)
                return
        self.words.append(word)

    def end_command(self) -> None:
        if self.words or self.redirects or self.assignments:
            self.commands.append(
                Command(tuple(self.words), tuple(self.redirects), tuple(self.assignments))
            )
        self.words, self.redirects, self.assignments = [], [], []

    def end_pipeline(self, *, background: bool = False) -> None:
        self.end_command()
        if self.commands:
            self.pipelines.append(Pipeline(tuple(self.commands), background, self.depth))
        self.commands = []
        self.header = False
