"""The two small languages of a workflow file: conditions and templates.

A condition (`if:`) is read by a parser of its own, never by `eval`:

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "in" | "not in") operand)?
    operand    := 'text' | "text" | node | "(" condition ")"

A node name stands for that node's latest output (empty text while it has not run). `a in
b` is true when the text `a` occurs in the text `b`; `==` and `!=` compare texts exactly;
an operand on its own is true when its text is not empty. Quoted texts know the escapes
`\\'`, `\\"`, `\\\\`, `\\n` and `\\t`.

A template (an agent's goal, an approval's question, the workflow's output) is text in
which `{node}` stands for that node's latest output; `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from keel.errors import KeelError

KEYWORDS = frozenset({"and", "or", "not", "in"})
NODE_NAME = r"[A-Za-z][A-Za-z0-9_-]*"


class ExpressionError(KeelError):
    """A condition or a template that cannot be read; the message says where and why."""


# -- conditions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    value: str


@dataclass(frozen=True, slots=True)
class Output:
    node: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Both:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Either:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # "==", "!=", "in", "not in"
    left: Text | Output
    right: Text | Output


Expr = Text | Output | Not | Both | Either | Compare

_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<text>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|\(|\))
      | (?P<name>{NODE_NAME})
      | (?P<bad>\S)
    )""",
    re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "text", "op", "name", "keyword", "end"
    value: str
    column: int


def _unquote(raw: str, column: int) -> str:
    body, out, index = raw[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                raise ExpressionError(f"at column {column + index + 1}: unknown escape \\{escaped}")
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(source):
        if not source[position:].strip():
            break
        match = _TOKEN.match(source, position)
        assert match is not None  # the last alternative matches any character
        column = match.start(match.lastgroup or 0) + 1
        if match["bad"] is not None:
            bad = match["bad"]
            if bad in "'\"":
                raise ExpressionError(f"at column {column}: the text opened here is never closed")
            raise ExpressionError(f"at column {column}: unexpected '{bad}'")
        if match["text"] is not None:
            found.append(_Token("text", _unquote(match["text"], column), column))
        elif match["op"] is not None:
            found.append(_Token("op", match["op"], column))
        else:
            name = match["name"]
            found.append(_Token("keyword" if name in KEYWORDS else "name", name, column))
        position = match.end()
    found.append(_Token("end", "", len(source) + 1))
    return found


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def at(self, kind: str, value: str) -> bool:
        token = self.peek()
        return token.kind == kind and token.value == value

    def fail(self, expected: str) -> ExpressionError:
        token = self.peek()
        found = "the end" if token.kind == "end" else f"'{token.value}'"
        return ExpressionError(f"at column {token.column}: expected {expected}, found {found}")

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise ExpressionError("the condition is empty")
        expr = self.either()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or the end")
        return expr

    def either(self) -> Expr:
        expr = self.both()
        while self.at("keyword", "or"):
            self.take()
            expr = Either(expr, self.both())
        return expr

    def both(self) -> Expr:
        expr = self.negation()
        while self.at("keyword", "and"):
            self.take()
            expr = Both(expr, self.negation())
        return expr

    def negation(self) -> Expr:
        if self.at("keyword", "not"):
            self.take()
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        token = self.peek()
        if token.kind == "op" and token.value in ("==", "!="):
            op = self.take().value
        elif self.at("keyword", "in"):
            self.take()
            op = "in"
        elif (
            self.at("keyword", "not")
            and self.peek(1).kind == "keyword"
            and self.peek(1).value == "in"
        ):
            self.index += 2
            op = "not in"
        else:
            return left
        right = self.operand()
        if not isinstance(left, Text | Output) or not isinstance(right, Text | Output):
            raise ExpressionError(
                f"at column {token.column}: '{op}' compares texts (a quoted text or a node), "
                "not conditions"
            )
        return Compare(op, left, right)

    def operand(self) -> Expr:
        token = self.peek()
        if token.kind == "text":
            return Text(self.take().value)
        if token.kind == "name":
            return Output(self.take().value)
        if self.at("op", "("):
            self.take()
            expr = self.either()
            if not self.at("op", ")"):
                raise self.fail("')'")
            self.take()
            return expr
        raise self.fail("a quoted text, a node name or '('")


def parse_condition(source: str) -> Expr:
    """Read a condition; raise ExpressionError saying where it went wrong."""
    return _Parser(source).parse()


def condition_names(expr: Expr) -> set[str]:
    """The nodes whose outputs a condition reads."""
    match expr:
        case Output(node):
            return {node}
        case Text():
            return set()
        case Not(operand):
            return condition_names(operand)
        case Both(left, right) | Either(left, right):
            return condition_names(left) | condition_names(right)
        case Compare(_, left, right):
            return condition_names(left) | condition_names(right)
    raise AssertionError(expr)


def _text(operand: Text | Output, outputs: Mapping[str, str]) -> str:
    return operand.value if isinstance(operand, Text) else outputs.get(operand.node, "")


def evaluate(expr: Expr, outputs: Mapping[str, str]) -> bool:
    """The condition's value given the nodes' latest outputs."""
    match expr:
        case Text() | Output():
            return bool(_text(expr, outputs))
        case Not(operand):
            return not evaluate(operand, outputs)
        case Both(left, right):
            return evaluate(left, outputs) and evaluate(right, outputs)
        case Either(left, right):
            return evaluate(left, outputs) or evaluate(right, outputs)
        case Compare(op, left, right):
            a, b = _text(left, outputs), _text(right, outputs)
            if op == "==":
                return a == b
            if op == "!=":
                return a != b
            return (a in b) if op == "in" else (a not in b)
    raise AssertionError(expr)


# -- templates ----------------------------------------------------------------------------

_PART = re.compile(rf"\{{\{{|\}}\}}|\{{({NODE_NAME})\}}|\{{|\}}")


def template_names(template: str) -> list[str]:
    """The nodes a template refers to, in order; raise ExpressionError on a stray brace."""
    names: list[str] = []
    for match in _PART.finditer(template):
        if match[1] is not None:
            names.append(match[1])
        elif match[0] in ("{", "}"):
            raise ExpressionError(
                f"at column {match.start() + 1}: a lone '{match[0]}'; write {{node}} for a "
                f"node's output, or '{match[0] * 2}' for the brace itself"
            )
    return names


def render(template: str, outputs: Mapping[str, str]) -> str:
    """The template with each `{node}` replaced by that node's latest output."""

    def part(match: re.Match[str]) -> str:
        if match[1] is not None:
            return outputs.get(match[1], "")
        return match[0][0]

    return _PART.sub(part, template)
