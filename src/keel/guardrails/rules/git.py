"""`git`: what publishes (push), what loses work (reset --hard, clean, checkout .), what
rewrites history (rebase, commit --amend, filter-branch, force push) and which config runs
commands. Reading (status, diff, log, show) and committing are routine."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from keel.guardrails.findings import NETWORK, UPLOAD, Finding
from keel.guardrails.invocation import Invocation

PROTECTED_BRANCHES = frozenset(
    {"main", "master", "trunk", "develop", "production", "prod", "release"}
)
GLOBAL_OPTIONS_WITH_VALUES = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})
EXECUTING_CONFIG = re.compile(
    r"core\.(sshcommand|pager|editor|hookspath|fsmonitor|gitproxy)|alias\.|.*\.helper$"
    r"|diff\..*\.(textconv|command)|filter\.|.*\.cmd$|sequence\.editor",
    re.IGNORECASE,
)
REMOTE_TALK = frozenset({"clone", "fetch", "pull", "ls-remote"})

_talks = frozenset({NETWORK})
_publishes = frozenset({NETWORK, UPLOAD})


class _Args:
    """The arguments after the subcommand: options and positionals."""

    def __init__(self, args: tuple[str, ...]) -> None:
        self.options = [a for a in args if a.startswith("-") and a != "--"]
        self.positionals = [a for a in args if not a.startswith("-")]
        self.after_dashes = list(args[args.index("--") + 1 :]) if "--" in args else []

    def has(self, *options: str) -> bool:
        for given in self.options:
            for option in options:
                if given == option or given.startswith(option + "="):
                    return True
                if len(option) == 2 and not given.startswith("--") and option[1] in given[1:]:
                    return True
        return False


def push(a: _Args, shown: str) -> Iterator[Finding]:
    refs = a.positionals[1:]
    force = a.has("-f", "--force", "--force-with-lease", "--force-if-includes") or any(
        r.startswith("+") for r in refs
    )
    targets = {r.lstrip("+").rpartition(":")[2] for r in refs}
    protected = sorted(targets & PROTECTED_BRANCHES)
    if a.has("--mirror"):
        yield Finding(85, f"mirror push overwrites every remote branch ({shown})", _publishes)
    elif force and protected:
        yield Finding(
            90, f"force push to {protected[0]} rewrites its shared history ({shown})", _publishes
        )
    elif force:
        yield Finding(75, f"force push rewrites remote history ({shown})", _publishes)
    elif a.has("-d", "--delete") or any(r.startswith(":") for r in refs):
        yield Finding(75, f"deletes a remote branch ({shown})", _publishes)
    else:
        yield Finding(50, f"pushes to a remote, an external side effect ({shown})", _publishes)


def reset(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("--hard"):
        yield Finding(60, f"discards uncommitted changes ({shown})")


def clean(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("-n", "--dry-run") or not a.has("-f", "--force"):
        return
    if a.has("-x", "-X"):
        yield Finding(65, f"deletes untracked and ignored files ({shown})")
    elif a.has("-d"):
        yield Finding(60, f"deletes untracked files and directories ({shown})")
    else:
        yield Finding(55, f"deletes untracked files ({shown})")


def _discards(paths: list[str], shown: str, *, force: bool = False) -> Iterator[Finding]:
    if force or any(p in (".", ":/", "*", "./") for p in paths):
        yield Finding(55, f"discards uncommitted changes in the whole tree ({shown})")
    elif paths:
        yield Finding(30, f"discards uncommitted changes to {', '.join(paths)} ({shown})")


def checkout(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("-b", "-B", "--orphan"):
        return
    paths = a.after_dashes or [p for p in a.positionals if p in (".", ":/", "*", "./")]
    yield from _discards(paths, shown, force=a.has("-f", "--force"))


def restore(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("--staged", "-S") and not a.has("--worktree", "-W"):
        return
    yield from _discards(a.positionals or a.after_dashes, shown)


def switch(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("-f", "--force", "--discard-changes"):
        yield Finding(55, f"discards uncommitted changes ({shown})")


def stash(a: _Args, shown: str) -> Iterator[Finding]:
    action = a.positionals[0] if a.positionals else ""
    if action == "clear":
        yield Finding(55, f"deletes every stash ({shown})")
    elif action == "drop":
        yield Finding(45, f"drops a stash ({shown})")


def branch(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("-D") or (a.has("-d", "--delete") and a.has("-f", "--force")):
        yield Finding(45, f"force-deletes a branch; its unmerged commits are lost ({shown})")
    elif a.has("-f", "--force"):
        yield Finding(40, f"moves a branch by force ({shown})")


def rebase(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("--abort", "--continue", "--skip", "--quit"):
        return
    score = 55 if a.has("-i", "--interactive", "--root") else 45
    yield Finding(score, f"rewrites commit history ({shown})")


def commit(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("--amend"):
        yield Finding(40, f"rewrites the last commit ({shown})")
    if a.has("--no-verify"):
        yield Finding(30, f"skips the commit hooks ({shown})")


def rewrite_all(a: _Args, shown: str) -> Iterator[Finding]:
    yield Finding(85, f"rewrites the whole history ({shown})")


def reflog(a: _Args, shown: str) -> Iterator[Finding]:
    if a.positionals[:1] in (["expire"], ["delete"]):
        yield Finding(70, f"erases the reflog, the last way back to lost commits ({shown})")


def gc(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("--prune=now", "--prune=all"):
        yield Finding(60, f"prunes unreachable commits for good ({shown})")


def update_ref(a: _Args, shown: str) -> Iterator[Finding]:
    yield Finding(55 if a.has("-d") else 40, f"rewrites a ref directly ({shown})")


def tag(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("-d", "--delete", "-f", "--force"):
        yield Finding(40, f"deletes or moves a tag ({shown})")


def config(a: _Args, shown: str) -> Iterator[Finding]:
    if a.has("--get", "--get-all", "--list", "-l", "--get-regexp"):
        return
    key = a.positionals[0] if a.positionals else ""
    if EXECUTING_CONFIG.match(key) and len(a.positionals) > 1:
        yield Finding(60, f"sets git {key}, which runs commands ({shown})")
    elif a.has("--global", "--system") and len(a.positionals) > 1:
        yield Finding(45, f"changes git configuration outside the workspace ({shown})")


def remote(a: _Args, shown: str) -> Iterator[Finding]:
    if a.positionals[:1] in (["add"], ["set-url"], ["remove"], ["rm"], ["rename"]):
        yield Finding(30, f"changes the repository's remotes ({shown})")


def talk(a: _Args, shown: str) -> Iterator[Finding]:
    yield Finding(20, f"fetches from a git remote over the network ({shown})", _talks)


def send_email(a: _Args, shown: str) -> Iterator[Finding]:
    yield Finding(60, f"sends patches by email ({shown})", _publishes)


def serve(a: _Args, shown: str) -> Iterator[Finding]:
    yield Finding(50, f"serves the repository over the network ({shown})")


def git_rm(a: _Args, shown: str) -> Iterator[Finding]:
    if not a.has("--cached") and a.has("-r") and "." in a.positionals:
        yield Finding(60, f"deletes every tracked file ({shown})")


SUBCOMMANDS: dict[str, Callable[[_Args, str], Iterator[Finding]]] = {
    "push": push,
    "reset": reset,
    "clean": clean,
    "checkout": checkout,
    "restore": restore,
    "switch": switch,
    "stash": stash,
    "branch": branch,
    "rebase": rebase,
    "commit": commit,
    "filter-branch": rewrite_all,
    "filter-repo": rewrite_all,
    "reflog": reflog,
    "gc": gc,
    "update-ref": update_ref,
    "tag": tag,
    "config": config,
    "remote": remote,
    "send-email": send_email,
    "daemon": serve,
    "instaweb": serve,
    "rm": git_rm,
    **dict.fromkeys(REMOTE_TALK, talk),
}


def git(inv: Invocation) -> Iterator[Finding]:
    args = inv.args
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "-c" and i + 1 < len(args) and EXECUTING_CONFIG.match(args[i + 1]):
            yield Finding(60, f"runs git with a config that runs commands ({inv.shown})")
        i += 2 if args[i] in GLOBAL_OPTIONS_WITH_VALUES else 1
    if i < len(args) and args[i] in SUBCOMMANDS:
        yield from SUBCOMMANDS[args[i]](_Args(args[i + 1 :]), inv.shown)
