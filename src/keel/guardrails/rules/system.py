"""Programs that act on the machine rather than on files: privileges (`sudo`, `su`),
processes (`kill`), power (`shutdown`), services, scheduled jobs, users and passwords,
the firewall, mounts, kernel settings, the shell's history and environment."""

from __future__ import annotations

import re
from collections.abc import Iterator

from keel.guardrails.findings import SECRET, Finding
from keel.guardrails.invocation import Invocation, Rule

SECRET_VARIABLE = re.compile(
    r"\$\{?([A-Za-z0-9_]*(SECRET|TOKEN|PASSW(OR)?D|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY"
    r"|CREDENTIALS?|AUTH)[A-Za-z0-9_]*)",
    re.IGNORECASE,
)
POWER = frozenset({"shutdown", "reboot", "halt", "poweroff"})
ACCOUNTS = frozenset(
    {"useradd", "userdel", "usermod", "adduser", "deluser", "passwd", "chpasswd", "groupadd",
     "groupdel", "gpasswd", "visudo"}
)  # fmt: skip
FIREWALLS = frozenset({"iptables", "ip6tables", "nft", "ufw", "firewall-cmd", "pfctl"})
KERNEL_MODULES = frozenset({"insmod", "rmmod", "modprobe"})
# variable: (score, what setting it does)
RISKY_VARIABLES: dict[str, tuple[int, str]] = {
    "HISTFILE": (50, "hides the shell history"),
    "HISTSIZE": (50, "hides the shell history"),
    "HISTFILESIZE": (50, "hides the shell history"),
    "LD_PRELOAD": (60, "injects a library into every program"),
    "LD_LIBRARY_PATH": (30, "changes which libraries programs load"),
    "PROMPT_COMMAND": (50, "runs a command at every prompt"),
}
SYSTEMCTL_POWER = frozenset({"poweroff", "reboot", "halt", "suspend", "hibernate", "kexec"})
SYSTEMCTL_STOPS = frozenset({"stop", "disable", "mask", "kill", "isolate"})
SYSTEMCTL_STARTS = frozenset({"start", "restart", "enable", "reload", "daemon-reload", "unmask"})


def variable_risk(assignment: str, shown: str) -> Finding | None:
    """What setting `NAME=value` (as a prefix, or with `export`) does, if risky."""
    name = assignment.partition("=")[0]
    if name in RISKY_VARIABLES:
        score, what = RISKY_VARIABLES[name]
        return Finding(score, f"{what} ({shown})")
    return None


def secret_variables(text: str) -> list[str]:
    """The secret-looking variables `text` expands: `$GITHUB_TOKEN`, `${API_KEY}`."""
    return [match.group(1) for match in SECRET_VARIABLE.finditer(text)]


def sudo(inv: Invocation) -> Iterator[Finding]:
    if not inv.args or inv.has("-s", "-i", "--shell", "--login"):
        yield Finding(75, f"opens a root shell ({inv.shown})")
    else:
        yield Finding(40, f"uses sudo ({inv.shown})")


def su(inv: Invocation) -> Iterator[Finding]:
    yield Finding(70, f"switches to another user ({inv.shown})")


def su_commands(inv: Invocation) -> list[str]:
    command = inv.value("-c", "--command")
    return [command] if command else []


def kill(inv: Invocation) -> Iterator[Finding]:
    args = list(inv.args)
    if args[:1] in (["-s"], ["-n"]):
        args = args[2:]
    elif args and args[0].startswith("-") and args[0] != "--":
        args = args[1:]  # the signal
    if args[:1] == ["--"]:
        args = args[1:]
    if "-1" in args or "1" in args:
        yield Finding(90, f"kills every process it can reach ({inv.shown})")


def kill_by_name(inv: Invocation) -> Iterator[Finding]:
    yield Finding(40, f"kills processes by name ({inv.shown})")


def power(inv: Invocation) -> Iterator[Finding]:
    yield Finding(90, f"shuts down or restarts the machine ({inv.shown})")


def init(inv: Invocation) -> Iterator[Finding]:
    if inv.args[:1] in (("0",), ("6",)):
        yield Finding(90, f"shuts down or restarts the machine ({inv.shown})")


def systemctl(inv: Invocation) -> Iterator[Finding]:
    action = next((a for a in inv.args if not a.startswith("-")), "")
    if action in SYSTEMCTL_POWER:
        yield Finding(90, f"shuts down or restarts the machine ({inv.shown})")
    elif action in SYSTEMCTL_STOPS:
        yield Finding(60, f"stops or disables a system service ({inv.shown})")
    elif action in SYSTEMCTL_STARTS:
        yield Finding(45, f"starts or reloads a system service ({inv.shown})")


def service(inv: Invocation) -> Iterator[Finding]:
    if set(inv.args) & {"stop", "restart", "start", "reload"}:
        yield Finding(55, f"starts or stops a system service ({inv.shown})")


def crontab(inv: Invocation) -> Iterator[Finding]:
    if inv.has("-r"):
        yield Finding(70, f"deletes every cron job ({inv.shown})")
    elif not inv.has("-l"):
        yield Finding(60, f"installs cron jobs that run unattended ({inv.shown})")


def scheduler(inv: Invocation) -> Iterator[Finding]:
    yield Finding(50, f"schedules a command to run later ({inv.shown})")


def accounts(inv: Invocation) -> Iterator[Finding]:
    yield Finding(80, f"changes system users, groups or passwords ({inv.shown})")


def firewall(inv: Invocation) -> Iterator[Finding]:
    args = set(inv.args)
    if args & {"-L", "-S", "--list", "status", "list", "--list-all", "-nL"}:
        return
    if args & {"-F", "--flush", "disable", "reset", "-X", "flush"}:
        yield Finding(80, f"disables or flushes the firewall ({inv.shown})")
    else:
        yield Finding(60, f"changes firewall rules ({inv.shown})")


def mount(inv: Invocation) -> Iterator[Finding]:
    if inv.args:
        yield Finding(60, f"mounts or unmounts file systems ({inv.shown})")


def sysctl(inv: Invocation) -> Iterator[Finding]:
    if inv.has("-w", "--write") or any("=" in a for a in inv.args):
        yield Finding(70, f"changes kernel parameters ({inv.shown})")


def kernel_modules(inv: Invocation) -> Iterator[Finding]:
    yield Finding(85, f"loads or unloads kernel modules ({inv.shown})")


def attributes(inv: Invocation) -> Iterator[Finding]:
    yield Finding(60, f"changes file attributes or capabilities ({inv.shown})")


def swap(inv: Invocation) -> Iterator[Finding]:
    yield Finding(60, f"changes swap space ({inv.shown})")


def history(inv: Invocation) -> Iterator[Finding]:
    if inv.has("-c", "-d", "-w"):
        yield Finding(50, f"erases the shell history ({inv.shown})")


def set_option(inv: Invocation) -> Iterator[Finding]:
    if inv.args[:2] == ("+o", "history"):
        yield Finding(50, f"turns the shell history off ({inv.shown})")


def export(inv: Invocation) -> Iterator[Finding]:
    if not inv.args or inv.args == ("-p",):
        yield Finding(35, f"prints every environment variable, secrets included ({inv.shown})",
                      frozenset({SECRET}))  # fmt: skip
    for assignment in inv.args:
        found = variable_risk(assignment, inv.shown)
        if found:
            yield found


def unset(inv: Invocation) -> Iterator[Finding]:
    if {"HISTFILE", "HISTSIZE"} & set(inv.args):
        yield Finding(50, f"hides the shell history ({inv.shown})")


def secret_export(inv: Invocation) -> Iterator[Finding]:
    """`gpg --export-secret-keys`, `security find-generic-password -w`: keys in the clear."""
    args = " ".join(inv.args)
    if re.search(r"--export-secret|find-(generic|internet)-password|dump-keychain", args):
        yield Finding(75, f"exports secret keys or passwords ({inv.shown})", frozenset({SECRET}))


def environment(inv: Invocation) -> Iterator[Finding]:
    """`env` or `printenv` with nothing to run: prints the environment."""
    operands = [a for a in inv.args if not a.startswith("-") and "=" not in a]
    secret = [a for a in operands if secret_variables("$" + a)]
    if secret:
        what = f"prints the secret variable {secret[0]} ({inv.shown})"
        yield Finding(70, what, frozenset({SECRET}))
    elif not operands:
        what = f"prints every environment variable, secrets included ({inv.shown})"
        yield Finding(35, what, frozenset({SECRET}))


RULES: dict[str, Rule] = {
    "sudo": sudo,
    "doas": sudo,
    "su": su,
    "kill": kill,
    "pkill": kill_by_name,
    "killall": kill_by_name,
    "killall5": power,
    "init": init,
    "telinit": init,
    "systemctl": systemctl,
    "service": service,
    "crontab": crontab,
    "at": scheduler,
    "batch": scheduler,
    "launchctl": scheduler,
    "mount": mount,
    "umount": mount,
    "sysctl": sysctl,
    "chattr": attributes,
    "setcap": attributes,
    "swapoff": swap,
    "swapon": swap,
    "history": history,
    "set": set_option,
    "export": export,
    "unset": unset,
    "env": environment,
    "printenv": environment,
    "gpg": secret_export,
    "gpg2": secret_export,
    "security": secret_export,
    **dict.fromkeys(POWER, power),
    **dict.fromkeys(ACCOUNTS, accounts),
    **dict.fromkeys(FIREWALLS, firewall),
    **dict.fromkeys(KERNEL_MODULES, kernel_modules),
}
