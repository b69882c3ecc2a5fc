"""One simple command as it will run. Wrappers that only change how a program runs (`sudo`,
`env`, `timeout`, `nice`, `xargs`, `uv run`, ...) are peeled off, so that the command
rules see the real program: `sudo -u root timeout 5 rm -rf /` is `rm -rf /` run as root.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from keel.guardrails.findings import Finding
from keel.guardrails.paths import Location, Locator
from keel.guardrails.shell_parse import Command, Word


@dataclass(frozen=True, slots=True)
class Wrapper:
    values: frozenset[str] = frozenset()
    """Its options that take a value (`-u root`)."""
    operands: int = 0
    """Operands between its options and the wrapped command (`timeout 5 cmd`)."""


def option_set(text: str) -> frozenset[str]:
    """The options listed, space-separated, in `text`."""
    return frozenset(text.split())


def _wrapper(values: str = "", operands: int = 0) -> Wrapper:
    return Wrapper(option_set(values), operands)


WRAPPERS: dict[str, Wrapper] = {
    "sudo": _wrapper("-u -g -C -D -h -p -r -t -U --user --group --chdir --host --prompt"),
    "doas": _wrapper("-u -C"),
    "pkexec": _wrapper("--user"),
    "runuser": _wrapper("-u -g -G --user --group"),
    "env": _wrapper("-u --unset -C --chdir -S --split-string"),
    "nice": _wrapper("-n --adjustment"),
    "ionice": _wrapper("-c -n -p -P -u --class --classdata"),
    "timeout": _wrapper("-s --signal -k --kill-after", operands=1),
    "nohup": _wrapper(),
    "time": _wrapper("-f -o --format --output"),
    "builtin": _wrapper(),
    "exec": _wrapper("-a"),
    "command": _wrapper(),
    "stdbuf": _wrapper("-i -o -e --input --output --error"),
    "setsid": _wrapper(),
    "unbuffer": _wrapper(),
    "chronic": _wrapper(),
    "flock": _wrapper("-w -E --timeout --conflict-exit-code", operands=1),
    "taskset": _wrapper(operands=1),
    "chroot": _wrapper("--userspec --groups", operands=1),
    "strace": _wrapper("-o -p -e -s -u -E -P -O -a -b -S -X"),
    "ltrace": _wrapper("-o -p -e -s -u -n -a"),
    "xargs": _wrapper(
        "-I -n -P -L -d -E -s -a --max-args --max-procs --delimiter --arg-file --max-lines "
        "--replace --eof --process-slot-var"
    ),
}
ROOT_WRAPPERS = frozenset({"sudo", "doas", "pkexec", "runuser"})

# `<tool> <subcommand>` that runs the rest as a command, and the options it takes a value for.
SUBCOMMAND_WRAPPERS: dict[tuple[str, str], Wrapper] = {
    ("uv", "run"): _wrapper(
        "--with --python -p --project --directory --group --extra --package --env-file"
    ),
    ("poetry", "run"): _wrapper(),
    ("pipenv", "run"): _wrapper(),
    ("pdm", "run"): _wrapper(),
    ("hatch", "run"): _wrapper(),
    ("conda", "run"): _wrapper("-n --name -p --prefix"),
    ("mamba", "run"): _wrapper("-n --name -p --prefix"),
    ("bundle", "exec"): _wrapper(),
}
PYTHON = re.compile(r"(python|pypy)[\d.]*|py")

STDIN_ARGUMENT = Word("<stdin>", dynamic=True)
"""The arguments `xargs` reads from its input: unknown until the command runs."""


@dataclass(frozen=True, slots=True)
class Invocation:
    words: tuple[Word, ...]
    """The program and its arguments, wrappers peeled off."""
    command: Command
    """The simple command as written."""
    cwd: PurePosixPath | None
    locator: Locator
    wrappers: tuple[str, ...] = ()
    assignments: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The program's name: `/usr/bin/rm` and `\\rm` are `rm`."""
        return posixpath.basename(self.words[0].text) if self.words else ""

    @property
    def args(self) -> tuple[str, ...]:
        return tuple(word.text for word in self.words[1:])

    @property
    def text(self) -> str:
        """The program and its arguments as one line (wrappers peeled off)."""
        return " ".join([self.name, *self.args]) if self.words else ""

    @property
    def written(self) -> str:
        """The simple command as written, without its `NAME=value` prefixes."""
        return " ".join(self.command.argv)

    @property
    def shown(self) -> str:
        """The command as written, quoted and shortened for a reason."""
        parts = [_display(w.text) for w in (*self.command.assignments, *self.command.words)]
        parts += [f"{r.op}{_display(r.target.text)}" for r in self.command.redirects]
        line = " ".join(parts)
        return line if len(line) <= 80 else line[:77] + "..."

    def where(self, word: Word | str) -> Location:
        """Where a word names: unknown when the shell computes it (`$X`, `<(...)`)."""
        if isinstance(word, str):
            return self.locator.locate(word, self.cwd)
        if word.dynamic and "$" not in word.text:
            return self.locator.unknown(word.text)
        return self.locator.locate(word.text, self.cwd)

    def has(self, *options: str) -> bool:
        """Whether an option is given: `-r` is found in `-rf` too, `--out` in `--out=x`."""
        for text in self.args:
            if text == "--":
                return False
            for option in options:
                if text == option or (option.startswith("--") and text.startswith(option + "=")):
                    return True
                short = len(option) == 2 and text.startswith("-") and not text.startswith("--")
                if short and option[1] in text[1:]:
                    return True
        return False

    def value(self, *options: str) -> str | None:
        """The value of the first of `options` given (`-o x`, `-ox`, `--out x`, `--out=x`)."""
        args = self.args
        for i, text in enumerate(args):
            if text == "--":
                return None
            for option in options:
                if text == option:
                    return args[i + 1] if i + 1 < len(args) else None
                if option.startswith("--") and text.startswith(option + "="):
                    return text[len(option) + 1 :]
                if len(option) == 2 and text.startswith(option) and not text.startswith("--"):
                    return text[2:]
        return None

    def operands(self, values: frozenset[str] = frozenset()) -> list[Word]:
        """The arguments that are not options, skipping the values of `values` options."""
        return _operands(self.words[1:], values)


def _display(word: str) -> str:
    return shlex.quote(word) if not word or re.search(r"[\s'\"\\;&|<>]", word) else word


def unwrap(command: Command, cwd: PurePosixPath | None, locator: Locator) -> Invocation:
    """The command with its wrappers peeled off."""
    words = command.words
    wrappers: list[str] = []
    while words:
        name = posixpath.basename(words[0].text)
        rest: tuple[Word, ...] | None = None
        if name in WRAPPERS and not (name == "command" and _flag(words, "-v", "-V")):
            rest = _after_options(words[1:], WRAPPERS[name], assignments=name == "env")
            if name == "xargs":
                rest = _with_stdin_arguments(words[1:], rest)
        elif len(words) > 1 and (name, words[1].text) in SUBCOMMAND_WRAPPERS:
            rest = _after_options(words[2:], SUBCOMMAND_WRAPPERS[(name, words[1].text)])
        elif PYTHON.fullmatch(name) and [w.text for w in words[1:3]] == ["-m", "pip"]:
            words = (Word("pip"), *words[3:])
            continue
        if not rest:
            break
        wrappers.append(name)
        words = rest
    return Invocation(
        words=words,
        command=command,
        cwd=cwd,
        locator=locator,
        wrappers=tuple(wrappers),
        assignments=tuple(w.text for w in command.assignments),
    )


def _flag(words: tuple[Word, ...], *flags: str) -> bool:
    return len(words) > 1 and words[1].text in flags


def _after_options(
    words: tuple[Word, ...], wrapper: Wrapper, *, assignments: bool = False
) -> tuple[Word, ...]:
    i = 0
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if assignments and "=" in text and not text.startswith("-"):
            i += 1
        elif text.startswith("-") and len(text) > 1:
            i += 1 + _takes_value(text, wrapper.values)
        else:
            break
    return words[i + wrapper.operands :]


def _takes_value(option: str, values: frozenset[str]) -> bool:
    """Whether `option` (possibly a cluster such as `-iu`) consumes the next word."""
    if option.startswith("--"):
        return "=" not in option and option in values
    for k in range(1, len(option)):
        if f"-{option[k]}" in values:
            return k == len(option) - 1
    return False


def _with_stdin_arguments(options: tuple[Word, ...], rest: tuple[Word, ...]) -> tuple[Word, ...]:
    replace = next(
        (options[i + 1].text for i, w in enumerate(options[:-1]) if w.text in ("-I", "--replace")),
        None,
    )
    if replace is None:
        return (*rest, STDIN_ARGUMENT) if rest else rest
    return tuple(STDIN_ARGUMENT if replace in w.text else w for w in rest)


def _operands(words: tuple[Word, ...], values: frozenset[str]) -> list[Word]:
    found: list[Word] = []
    i = 0
    while i < len(words):
        text = words[i].text
        if text == "--":
            found.extend(words[i + 1 :])
            break
        if text.startswith("-") and len(text) > 1 and not words[i].dynamic:
            i += 1 + _takes_value(text, values)
            continue
        found.append(words[i])
        i += 1
    return found


Rule = Callable[[Invocation], Iterable[Finding]]
"""What one program does that is risky, given how it is invoked."""
