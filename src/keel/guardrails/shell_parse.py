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
from dataclasses import replace
from functools import partial

from keel.guardrails.shell_lex import REDIRECTIONS, Lexer, Operator
from keel.guardrails.shell_syntax import Command, Pipeline, Redirect, Script, Word

__all__ = ["Command", "Pipeline", "Redirect", "Script", "Word", "parse"]

MAX_DEPTH = 8
"""Nesting of `$(...)` inside `$(...)` beyond which the parser stops and reports it."""

_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "{", "}", "!", "esac"}
)
_HEADERS = frozenset({"for", "select", "case"})
"""Reserved words whose line up to the next `;` or newline is not a command (its
substitutions still run: they go to `Script.expansions`)."""

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")


def parse(source: str, *, depth: int = 0) -> Script:
    """Parse `source` into pipelines; never raises, reports what it cannot read."""
    if depth > MAX_DEPTH:
        return Script(problems=(f"command substitutions nested more than {MAX_DEPTH} deep",))
    lexer = Lexer(source, partial(parse, depth=depth + 1))
    tokens = lexer.run()
    return _Parser(tokens, lexer.problems).run()


class _Parser:
    def __init__(self, tokens: list[Word | Operator], problems: list[str]) -> None:
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
            elif token.text in REDIRECTIONS:
                target = tokens[i + 1] if i + 1 < len(tokens) else None
                if not isinstance(target, Word):
                    self.problems.append(f"the redirection {token.text} has no target")
                else:
                    body = token.heredoc.body if token.heredoc else None
                    if token.heredoc and token.heredoc.substitutions:
                        target = replace(target, substitutions=token.heredoc.substitutions)
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
            and isinstance(after[0], Operator)
            and after[0].text == "("
            and isinstance(after[1], Operator)
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
        if not self.words and _is_assignment(word):
            self.assignments.append(word)
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


def _is_assignment(word: Word) -> bool:
    match = _ASSIGNMENT.match(word.text)
    return match is not None and (word.quoted_from is None or match.end() <= word.quoted_from)
