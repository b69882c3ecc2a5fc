"""Inline programs (`python -c`, `node -e`, `perl -e`, `ruby -e`, `awk '...'`, a here-document
fed to `python -`): what they do that a shell command would, found by pattern. The patterns
cover the common APIs of those languages; the string literals of the program are returned
too, so that the shell commands and paths they hold are scored like any other."""

from __future__ import annotations

import re
from dataclasses import dataclass

# what the code does: pattern (searched in the program text)
BEHAVIOURS: dict[str, str] = {
    "runs_shell": r"os\.system|subprocess|popen|child_process|exec(Sync|File)?\s*\(|system\s*\("
    r"|spawn|pty\.spawn|Runtime\.exec|shell_exec|passthru|`",
    "deletes": r"rmtree|rmSync|rmdirSync|unlinkSync|rimraf|remove_tree|rm_rf|FileUtils\.rm"
    r"|os\.remove|os\.unlink|unlink\s*\(|\.unlink\(|removedirs",
    "deletes_trees": r"rmtree|recursive|rm_rf|rm_r\b|remove_tree|rimraf|removedirs",
    "names_home": r"Dir\.home|expanduser\(\s*['\"]~['\"]\s*\)|homedir\(\)|Path\.home\(\)"
    r"|ENV\[['\"]HOME['\"]\]|env\.HOME|getenv\(\s*['\"]HOME['\"]\s*\)|\$HOME",
    "writes": r"open\s*\([^)]*['\"][wa]b?\+?['\"]|write_text|write_bytes|writeFileSync"
    r"|appendFileSync|File\.write|file_put_contents|>\s*['\"]",
    "network": r"socket|urlopen|urllib|requests\.|http\.client|httpx|fetch\s*\(|XMLHttpRequest"
    r"|Net::HTTP|LWP|IO::Socket|net\.connect|fsockopen|TCPSocket",
    "sends": r"\.post\s*\(|\.put\s*\(|\bsend(all|to)?\s*\(|['\"](POST|PUT)['\"]|data\s*=",
    "attaches_shell": r"dup2|pty\.spawn|/bin/(ba|z)?sh|cmd\.exe",
    "fork_loop": r"(while|for|loop|until)\b[^;\n]{0,40}\bfork"
    r"|\bfork\b[^;\n]{0,20}\b(while|until)\b",
    "runs_decoded": r"(exec|eval)\s*\(.{0,80}(b64decode|base64|fromCharCode|unhexlify|atob\s*\()",
}
_BEHAVIOURS = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in BEHAVIOURS.items()}
_LITERAL = re.compile(r"'((?:[^'\\\n]|\\.)*)'|\"((?:[^\"\\\n]|\\.)*)\"")


@dataclass(frozen=True, slots=True)
class CodeFacts:
    behaviours: frozenset[str]
    literals: tuple[str, ...]

    def does(self, behaviour: str) -> bool:
        return behaviour in self.behaviours


def scan(code: str) -> CodeFacts:
    behaviours = frozenset(name for name, pattern in _BEHAVIOURS.items() if pattern.search(code))
    literals = tuple(a or b for a, b in _LITERAL.findall(code) if a or b)
    return CodeFacts(behaviours, literals)


def looks_like_path(literal: str) -> bool:
    if "://" in literal or "\n" in literal or len(literal) > 200:
        return False
    return literal.startswith(("/", "~", "./", "../")) or ("/" in literal and " " not in literal)


def looks_like_command(literal: str) -> bool:
    return " " in literal.strip() and not literal.strip().startswith(("%", "{"))
