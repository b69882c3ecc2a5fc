"""Scores a shell command line. It parses the line, walks every simple command (through
pipelines, `&&` chains, subshells, `$(...)`, `bash -c`, `eval`, `find -exec`, `ssh host
cmd`, here-documents fed to a shell, inline `python -c` code), asks the command rules about
each, and adds what only the whole line shows: a download piped into a shell, a fork bomb,
a shell wired to a socket, a secret sent over the network.

It also collects, for the policy, each simple command's text and the paths it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from keel.guardrails.findings import NETWORK, SECRET, UPLOAD, Finding
from keel.guardrails.inline_code import looks_like_command, looks_like_path, scan
from keel.guardrails.invocation import PYTHON, ROOT_WRAPPERS, Invocation, option_set, unwrap
from keel.guardrails.path_risk import delete_risk, read_risk, write_risk
from keel.guardrails.paths import Location, Locator, Place
from keel.guardrails.rules import nested_for, rule_for
from keel.guardrails.rules.files import WRITERS
from keel.guardrails.rules.network import DOWNLOADERS, RAW_SOCKETS
from keel.guardrails.rules.system import secret_variables, variable_risk
from keel.guardrails.shell_parse import Pipeline, Script, Word, parse

MAX_NESTING = 6
"""`bash -c` inside `eval` inside ... deeper than this is itself a reason to ask."""

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})
# interpreter: the options whose value is a program
CODE_OPTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"-c"}),
    "node": frozenset({"-e", "--eval", "-p", "--print"}),
    "nodejs": frozenset({"-e", "--eval", "-p", "--print"}),
    "bun": frozenset({"-e", "--eval"}),
    "deno": frozenset({"eval"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
    "php": frozenset({"-r"}),
    "lua": frozenset({"-e"}),
    "Rscript": frozenset({"-e"}),
}
AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
FETCHERS = DOWNLOADERS | RAW_SOCKETS
DECOMPRESSORS = frozenset({"uudecode", "rev", "gunzip", "zcat", "bzcat", "xzcat", "unxz"})
SERVERS = {"http.server": "serves files over HTTP", "SimpleHTTPServer": "serves files over HTTP"}
# Programs whose operands are not files, or that do not show a file's content.
NOT_PATHS = frozenset({"echo", "printf", "git", "export", "unset", "alias", "kill", "pkill"})
NO_CONTENT = frozenset(
    {"ls", "stat", "test", "[", "[[", "du", "wc", "file", "touch", "mkdir", "rm", "rmdir",
     "unlink", "shred", "which", "type", "basename", "dirname", "realpath", "readlink", "cd",
     "pushd", "chmod", "chown", "chgrp", "find", "tree", "mv", "ln", "source", "."}
)  # fmt: skip
# Programs whose first operand is a pattern or a program, not a file (unless -e or -f).
PATTERN_FIRST = frozenset({"grep", "egrep", "fgrep", "zgrep", "rg", "ag", "ack", "sed", "gsed"})
PATTERN_VALUES = option_set(
    "-e -f -m -A -B -C -g -t --glob --type --regexp --file --max-count --include --exclude"
)


@dataclass
class CommandAnalysis:
    findings: list[Finding] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    """Each simple command as written and with its wrappers peeled off."""
    paths: list[Location] = field(default_factory=list)
    """The operands and redirection targets that name files."""


def analyze_command(line: str, locator: Locator) -> CommandAnalysis:
    walker = _Walker(locator)
    walker.text(line, locator.workspace, depth=0)
    return walker.result


class _Walker:
    def __init__(self, locator: Locator) -> None:
        self.locator = locator
        self.result = CommandAnalysis()

    def add(self, finding: Finding | None) -> None:
        if finding is not None:
            self.result.findings.append(finding)

    def text(self, source: str, cwd: PurePosixPath | None, depth: int) -> None:
        if depth > MAX_NESTING:
            self.add(Finding(60, f"commands nested too deep to check: {source[:60]}"))
            return
        self.script(parse(source), cwd, depth)

    def script(self, script: Script, cwd: PurePosixPath | None, depth: int) -> None:
        for problem in script.problems:
            what = f"the command does not parse ({problem}), so what it runs cannot be checked"
            self.add(Finding(45, what))
        for expansion in script.expansions:
            self.script(expansion, cwd, depth + 1)
        frames = [cwd]  # the working directory at each subshell depth
        for pipeline in script.pipelines:
            del frames[pipeline.depth + 1 :]
            while len(frames) <= pipeline.depth:
                frames.append(frames[-1])
            here = frames[pipeline.depth]
            self.pipeline(pipeline, here, script.functions, depth)
            if len(pipeline.commands) == 1:
                frames[pipeline.depth] = self.moved(pipeline, here)

    def moved(self, pipeline: Pipeline, cwd: PurePosixPath | None) -> PurePosixPath | None:
        """The working directory after a `cd` (None when it cannot be known)."""
        inv = unwrap(pipeline.commands[0], cwd, self.locator)
        if inv.name not in ("cd", "pushd", "popd"):
            return cwd
        operands = inv.operands()
        if inv.name == "popd" or (operands and operands[0].text == "-"):
            return None
        where = inv.where(operands[0]) if operands else inv.where("~")
        return None if where.place is Place.UNKNOWN else PurePosixPath(where.path)

    # -- a pipeline: its commands, then what only the whole pipeline shows -----------------

    def pipeline(
        self, pipeline: Pipeline, cwd: PurePosixPath | None, functions: tuple[str, ...], depth: int
    ) -> None:
        start = len(self.result.findings)
        invocations = [unwrap(command, cwd, self.locator) for command in pipeline.commands]
        for inv in invocations:
            self.invocation(inv, depth)
        names = [inv.name for inv in invocations]
        for name in sorted(set(functions) & set(names)):
            if names.count(name) >= 2:
                self.add(Finding(100, f"a fork bomb: the function {name} pipes into itself"))
        for i, consumer in enumerate(invocations[1:], 1):
            if self.reads_code_from_stdin(consumer):
                self.piped_into(consumer, invocations[:i], depth)
        if set(names) & SHELLS and set(names) & RAW_SOCKETS:
            self.add(Finding(100, "wires a shell to a network connection (a reverse shell)"))
        window = self.result.findings[start:]
        if any(SECRET in f.tags for f in window) and any(UPLOAD in f.tags for f in window):
            self.add(Finding(95, "sends secrets over the network (exfiltration)"))

    def piped_into(self, consumer: Invocation, producers: list[Invocation], depth: int) -> None:
        into = f"{consumer.name} ({consumer.shown})"
        if any(p.name in FETCHERS for p in producers):
            self.add(Finding(95, f"pipes a download straight into {into}"))
        elif any(_decodes(p) for p in producers):
            self.add(Finding(85, f"pipes decoded, hidden text into {into}"))
        elif len(producers) == 1 and producers[0].name in ("echo", "printf"):
            self.text(" ".join(producers[0].args), consumer.cwd, depth + 1)
        elif producers[-1].name != "cat":
            self.add(Finding(45, f"pipes generated text into {into}"))

    def reads_code_from_stdin(self, inv: Invocation) -> bool:
        if inv.name in SHELLS:
            options = [w.text for w in inv.words[1:] if w.text.startswith("-")]
            if any("c" in o[1:] and not o.startswith("--") for o in options):
                return False
            operands = inv.operands(frozenset({"-o", "+o", "-O", "--rcfile", "--init-file"}))
            return not operands or operands[0].text == "-" or "-s" in options
        language = _language(inv.name)
        if language is None or language == "deno":
            return False
        given = {w.text for w in inv.words[1:]}
        operands = inv.operands(frozenset({"-m", "-W", "-X"}))
        return (
            not (given & CODE_OPTIONS[language])
            and (not operands or operands[0].text == "-")
            and "-m" not in given
        )

    # -- one simple command -----------------------------------------------------------------

    def invocation(self, inv: Invocation, depth: int) -> None:
        if inv.words:
            self.result.commands.append((inv.written, inv.text))
        command = inv.command
        for word in (*command.words, *command.assignments, *(r.target for r in command.redirects)):
            for substitution in word.substitutions:
                self.script(substitution, inv.cwd, depth + 1)
        for assignment in inv.assignments:
            self.add(variable_risk(assignment, inv.shown))
        for wrapper in inv.wrappers:
            if wrapper in ROOT_WRAPPERS:
                self.add(Finding(60, f"runs as root ({wrapper}): {inv.shown}"))
            elif wrapper == "chroot":
                self.add(Finding(50, f"runs in another root directory: {inv.shown}"))
        self.redirections(inv)
        if not inv.words:
            return
        if inv.words[0].dynamic:
            what = f"runs a command whose name is only known when it runs ({inv.shown})"
            self.add(Finding(45, what))
        self.program(inv, depth)
        rule = rule_for(inv.name)
        if rule is not None:
            for finding in rule(inv):
                self.add(finding)
        nested = nested_for(inv.name)
        for text in nested(inv) if nested else []:
            self.text(text, inv.cwd, depth + 1)
        self.operands(inv)
        for word in inv.words:
            for variable in secret_variables(word.text) if word.dynamic else []:
                what = f"uses the secret variable ${variable} ({inv.shown})"
                self.add(Finding(60, what, frozenset({SECRET})))

    def program(self, inv: Invocation, depth: int) -> None:
        """Programs that run other code: shells, eval, source, interpreters, awk, watch."""
        name = inv.name
        if name in SHELLS:
            self.shell(inv, depth)
        elif name == "eval":
            if _fetches_any(inv.words[1:], self.locator):
                self.add(Finding(95, f"evaluates code downloaded from the network ({inv.shown})"))
            elif any(w.dynamic for w in inv.words[1:]):
                self.add(Finding(45, f"evaluates text only known when it runs ({inv.shown})"))
            self.text(" ".join(inv.args), inv.cwd, depth + 1)
        elif name in ("source", "."):
            self.source(inv)
        elif name == "watch":
            operands = inv.operands(frozenset({"-n", "--interval"}))
            self.text(" ".join(w.text for w in operands), inv.cwd, depth + 1)
        elif name in AWKS and not inv.has("-f"):
            programs = inv.operands(frozenset({"-F", "-v", "--assign", "--field-separator"}))
            if programs:
                self.code(programs[0].text, inv, depth)
        elif _language(name) is not None:
            self.interpreter(inv, depth)

    def shell(self, inv: Invocation, depth: int) -> None:
        words = inv.words[1:]
        for i, word in enumerate(words):
            text = word.text
            if text.startswith("-") and not text.startswith("--") and "c" in text[1:]:
                if i + 1 < len(words):
                    if _fetches_any(words[i + 1 : i + 2], self.locator):
                        what = f"runs code downloaded from the network ({inv.shown})"
                        self.add(Finding(95, what))
                    self.text(words[i + 1].text, inv.cwd, depth + 1)
                return
            if not text.startswith(("-", "+")):
                if _fetches_any((word,), self.locator):
                    what = f"runs a script downloaded from the network ({inv.shown})"
                    self.add(Finding(95, what))
                break
        for redirect in inv.command.redirects:
            if redirect.body is not None:
                self.text(redirect.body, inv.cwd, depth + 1)
            if inv.where(redirect.target).place is Place.SOCKET:
                what = f"wires a shell to a network connection, a reverse shell ({inv.shown})"
                self.add(Finding(100, what))

    def source(self, inv: Invocation) -> None:
        for word in inv.operands()[:1]:
            where = inv.where(word)
            if _fetches_any((word,), self.locator):
                what = f"runs a script downloaded from the network ({inv.shown})"
                self.add(Finding(95, what))
            elif where.secret:
                what = f"loads {where.shown} ({where.secret}) into the shell ({inv.shown})"
                self.add(Finding(25, what))

    def interpreter(self, inv: Invocation, depth: int) -> None:
        language = _language(inv.name) or ""
        words = inv.words[1:]
        for i, word in enumerate(words):
            text = word.text
            inline = text in CODE_OPTIONS[language] or (
                language == "perl" and re.fullmatch(r"-[a-zA-Z]*[eE]", text) is not None
            )
            if inline:
                if i + 1 < len(words):
                    self.code(words[i + 1].text, inv, depth)
                return
            if text == "-m" and i + 1 < len(words):
                module = words[i + 1].text
                if module in SERVERS:
                    self.add(Finding(30, f"{SERVERS[module]} ({inv.shown})"))
                return
            if not text.startswith("-"):
                if _fetches_any((word,), self.locator):
                    what = f"runs a script downloaded from the network ({inv.shown})"
                    self.add(Finding(95, what))
                return  # runs a script file
        for redirect in inv.command.redirects:
            if redirect.body is not None:
                self.code(redirect.body, inv, depth)

    def code(self, code: str, inv: Invocation, depth: int) -> None:
        facts = scan(code)
        via = inv.shown
        if facts.does("fork_loop"):
            self.add(Finding(100, f"forks in a loop, a fork bomb ({via})"))
        if facts.does("network") and facts.does("attaches_shell"):
            self.add(Finding(100, f"wires a shell to a network connection ({via})"))
        if facts.does("runs_decoded"):
            self.add(Finding(75, f"runs decoded, hidden code ({via})"))
        if facts.does("network"):
            tags = frozenset({NETWORK, UPLOAD} if facts.does("sends") else {NETWORK})
            self.add(Finding(45, f"inline code reaches the network ({via})", tags))
        if facts.does("runs_shell"):
            self.add(Finding(30, f"inline code runs shell commands ({via})"))
            for literal in facts.literals:
                if looks_like_command(literal):
                    self.text(literal, inv.cwd, depth + 1)
        if facts.does("deletes") and facts.does("names_home"):
            self.add(delete_risk(inv.where("~"), via, recursive=facts.does("deletes_trees")))
        for literal in facts.literals:
            if not looks_like_path(literal):
                continue
            where = inv.where(literal)
            self.result.paths.append(where)
            if facts.does("deletes"):
                recursive = facts.does("deletes_trees")
                self.add(delete_risk(where, via, recursive=recursive))
            if facts.does("writes"):
                self.add(write_risk(where, via))
            self.add(read_risk(where, via))

    # -- files: redirections and operands ---------------------------------------------------

    def redirections(self, inv: Invocation) -> None:
        for redirect in inv.command.redirects:
            if redirect.op in ("<<", "<<-", "<<<") or (
                redirect.op in (">&", "<&") and not redirect.writes
            ):
                continue
            where = inv.where(redirect.target)
            self.result.paths.append(where)
            if redirect.writes:
                self.add(write_risk(where, inv.shown))
            elif where.place is Place.SOCKET:
                what = f"opens a network connection through {where.shown}: {inv.shown}"
                self.add(Finding(90, what))
            else:
                self.add(read_risk(where, inv.shown))

    def operands(self, inv: Invocation) -> None:
        if inv.name in NOT_PATHS:
            return
        operands = inv.operands(PATTERN_VALUES if inv.name in PATTERN_FIRST else frozenset())
        if inv.name in PATTERN_FIRST and not inv.has("-e", "-f", "--regexp", "--file"):
            operands = operands[1:]
        if inv.name in WRITERS:  # what they write is scored by their rule, not read here
            operands = operands[:-1] if WRITERS[inv.name][0] == "last" else []
        for word in operands:
            if "://" in word.text:
                continue
            where = inv.where(word)
            self.result.paths.append(where)
            if where.place is Place.SOCKET:
                what = f"opens a network connection through {where.shown}: {inv.shown}"
                self.add(Finding(90, what))
            elif inv.name not in NO_CONTENT:
                self.add(read_risk(where, inv.shown))


def _language(name: str) -> str | None:
    if PYTHON.fullmatch(name):
        return "python"
    return name if name in CODE_OPTIONS else None


def _decodes(inv: Invocation) -> bool:
    name = inv.name
    if name in DECOMPRESSORS:
        return True
    if name == "base64":
        return inv.has("-d", "--decode", "-D")
    if name == "xxd":
        return inv.has("-r")
    if name in ("gzip", "xz", "bzip2"):
        return inv.has("-d", "--decompress")
    return name == "openssl" and inv.has("-d") and bool({"enc", "base64"} & set(inv.args))


def _fetches_any(words: tuple[Word, ...], locator: Locator) -> bool:
    """Whether a command substitution in `words` downloads something (`$(curl ...)`)."""
    return any(_fetches(s, locator) for word in words for s in word.substitutions)


def _fetches(script: Script, locator: Locator) -> bool:
    for pipeline in script.pipelines:
        for command in pipeline.commands:
            if unwrap(command, None, locator).name in FETCHERS:
                return True
            if any(_fetches(s, locator) for w in command.words for s in w.substitutions):
                return True
    return False
