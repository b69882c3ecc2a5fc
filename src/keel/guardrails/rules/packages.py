"""Package managers. Installing a named package pulls code from a registry and runs its
install hooks: an external side effect that needs a human. Installing what the project
already declares (`npm ci`, `pip install -r requirements.txt`, `pip install -e .`) is
routine. System package managers, global installs and installs from a URL weigh more;
publishing a package is an external side effect few tasks need."""

from __future__ import annotations

from collections.abc import Iterator

from keel.guardrails.findings import NETWORK, UPLOAD, Finding
from keel.guardrails.invocation import Invocation, Rule, option_set

# manager: its subcommands that install
INSTALLS: dict[str, frozenset[str]] = {
    "pip": frozenset({"install", "download"}),
    "pip3": frozenset({"install", "download"}),
    "uv": frozenset({"add"}),
    "poetry": frozenset({"add"}),
    "pipenv": frozenset({"install"}),
    "pdm": frozenset({"add"}),
    "conda": frozenset({"install"}),
    "mamba": frozenset({"install"}),
    "micromamba": frozenset({"install"}),
    "pipx": frozenset({"install", "inject"}),
    "npm": frozenset({"install", "i", "add", "isntall", "in"}),
    "yarn": frozenset({"add", "global"}),
    "pnpm": frozenset({"add", "install", "i"}),
    "bun": frozenset({"add", "install", "i"}),
    "gem": frozenset({"install"}),
    "cargo": frozenset({"install", "add"}),
    "go": frozenset({"install", "get"}),
    "composer": frozenset({"require"}),
    "dotnet": frozenset({"add"}),
}
# manager: its subcommands that install only what the project declares
DECLARED: dict[str, frozenset[str]] = {
    "npm": frozenset({"ci"}),
    "yarn": frozenset({"install", ""}),
    "poetry": frozenset({"install", "sync"}),
    "uv": frozenset({"sync"}),
    "pdm": frozenset({"install", "sync"}),
    "bundle": frozenset({"install"}),
    "composer": frozenset({"install"}),
    "go": frozenset({"mod"}),
}
UNINSTALLS: dict[str, frozenset[str]] = {
    "pip": frozenset({"uninstall"}),
    "pip3": frozenset({"uninstall"}),
    "npm": frozenset({"uninstall", "remove", "rm", "un", "r"}),
    "yarn": frozenset({"remove"}),
    "pnpm": frozenset({"remove", "rm", "uninstall"}),
    "poetry": frozenset({"remove"}),
    "uv": frozenset({"remove"}),
    "cargo": frozenset({"uninstall"}),
    "gem": frozenset({"uninstall"}),
    "conda": frozenset({"remove", "uninstall"}),
}
PUBLISHES: dict[str, frozenset[str]] = {
    "npm": frozenset({"publish", "unpublish"}),
    "yarn": frozenset({"publish"}),
    "pnpm": frozenset({"publish"}),
    "twine": frozenset({"upload"}),
    "cargo": frozenset({"publish", "yank"}),
    "gem": frozenset({"push", "yank"}),
    "poetry": frozenset({"publish"}),
    "uv": frozenset({"publish"}),
    "flit": frozenset({"publish"}),
    "hatch": frozenset({"publish"}),
}
SYSTEM_MANAGERS = frozenset(
    {"apt", "apt-get", "aptitude", "yum", "dnf", "zypper", "apk", "pacman", "brew", "port",
     "snap", "flatpak", "choco", "winget", "nix-env", "emerge", "dpkg", "rpm"}
)  # fmt: skip
SYSTEM_INSTALL = frozenset({"install", "add", "reinstall", "-S", "-i", "-U", "localinstall"})
SYSTEM_REMOVE = frozenset(
    {"remove", "purge", "autoremove", "erase", "uninstall", "del", "-R", "-Rns", "-e", "-r", "-P"}
)
SYSTEM_UPDATE = frozenset({"update", "upgrade", "dist-upgrade", "full-upgrade", "-Syu", "-Sy"})
# Options of the language managers that take a value (not a package name).
VALUE_OPTIONS = option_set(
    "-r --requirement -c --constraint -e --editable -i --index-url --extra-index-url -f "
    "--find-links -t --target --prefix --root --python-version --platform --src -C "
    "--config-settings --registry -w --workspace --save-prefix --tag --python -p --group "
    "--extra --only-binary --no-binary --upgrade-strategy --progress-bar --cache-dir"
)
GLOBAL_OPTIONS = ("-g", "--global", "--user", "--system", "--break-system-packages")
TOOL_INSTALLS = frozenset({("pipx", "install"), ("cargo", "install"), ("go", "install")})
"""Installs of programs for the whole user account, not the project."""
RUNNERS = {"npx": 35, "bunx": 35, "uvx": 35, "pnpx": 35}
_talks = frozenset({NETWORK})


def _subcommand(inv: Invocation) -> tuple[str, list[str]]:
    """The first word that is not an option, and the operands after it."""
    operands = [w.text for w in inv.operands(VALUE_OPTIONS)]
    if inv.name == "uv" and operands[:2] == ["pip", "install"]:
        return "add", operands[2:]
    return (operands[0], operands[1:]) if operands else ("", [])


def _is_local(spec: str) -> bool:
    if "://" in spec:
        return False
    return spec.startswith((".", "/", "~")) or spec.endswith((".whl", ".tar.gz", ".zip"))


def language_manager(inv: Invocation) -> Iterator[Finding]:
    manager = inv.name
    sub, operands = _subcommand(inv)
    shown = inv.shown
    if sub in PUBLISHES.get(manager, ()):
        tags = frozenset({NETWORK, UPLOAD})
        yield Finding(75, f"publishes a package to a public registry ({shown})", tags)
    elif sub in UNINSTALLS.get(manager, ()):
        yield Finding(35, f"uninstalls packages ({shown})")
    elif sub in DECLARED.get(manager, ()) or (sub in INSTALLS.get(manager, ()) and not operands):
        yield Finding(30, f"installs the project's declared dependencies ({shown})", _talks)
    elif sub in INSTALLS.get(manager, ()):
        named = [o for o in operands if not _is_local(o)]
        from_url = [o for o in named if "://" in o or o.startswith("git+")]
        if from_url:
            yield Finding(60, f"installs a package from {from_url[0]} ({shown})", _talks)
        elif named:
            machine_wide = inv.has(*GLOBAL_OPTIONS) or (manager, sub) in TOOL_INSTALLS
            score = 60 if machine_wide else 50
            packages = " ".join(named[:3])
            yield Finding(score, f"installs {packages} from a package registry ({shown})", _talks)
        else:
            yield Finding(30, f"installs a local package ({shown})", _talks)


def system_manager(inv: Invocation) -> Iterator[Finding]:
    words = set(inv.args)
    if words & SYSTEM_INSTALL:
        yield Finding(60, f"installs system packages ({inv.shown})", _talks)
    elif words & SYSTEM_REMOVE:
        yield Finding(60, f"removes system packages ({inv.shown})")
    elif words & SYSTEM_UPDATE:
        yield Finding(40, f"updates system packages ({inv.shown})", _talks)


def package_runner(inv: Invocation) -> Iterator[Finding]:
    own = []  # the runner's options come before the package; the rest are the package's
    for text in inv.args:
        if not text.startswith("-"):
            break
        own.append(text)
    fetches = bool({"-y", "--yes", "-p", "--package"} & set(own))
    score = 50 if fetches else RUNNERS[inv.name]
    what = f"runs a package that may be fetched from a registry ({inv.shown})"
    yield Finding(score, what, _talks)


RULES: dict[str, Rule] = {
    **dict.fromkeys(INSTALLS.keys() | DECLARED.keys() | PUBLISHES.keys(), language_manager),
    **dict.fromkeys(SYSTEM_MANAGERS, system_manager),
    **dict.fromkeys(RUNNERS, package_runner),
}
