"""Programs that reach other machines: downloaders (`curl`, `wget`), raw sockets (`nc`,
`socat`, `telnet`), remote shells and copies (`ssh`, `scp`, `rsync host:`), scanners and
sniffers. Talking to localhost is routine; anything else is an external side effect, and
sending data (`curl -d`, `scp`) is tagged so that a secret read next to it is exfiltration.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from keel.guardrails.findings import NETWORK, UPLOAD, Finding
from keel.guardrails.invocation import Invocation, Rule, option_set
from keel.guardrails.path_risk import read_risk, write_risk
from keel.guardrails.rules.files import REMOTE, writer

DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "xh", "lwp-download"})
RAW_SOCKETS = frozenset({"nc", "ncat", "netcat", "socat", "telnet"})
FILE_TRANSFER = frozenset({"ftp", "tftp", "sftp", "lftp"})
SCANNERS = frozenset({"nmap", "masscan", "zmap", "nikto", "sqlmap", "hydra", "medusa"})
SNIFFERS = frozenset({"tcpdump", "tshark", "wireshark", "ettercap"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"})

CURL_VALUES = option_set(
    "-o --output -d --data --data-binary --data-raw --data-ascii --data-urlencode -F --form "
    "--form-string -H --header -X --request -T --upload-file -u --user -A --user-agent -e "
    "--referer -b --cookie -c --cookie-jar -x --proxy -m --max-time --connect-timeout -w "
    "--write-out -K --config --url -r --range --retry -E --cert --key --cacert --json "
    "--resolve --limit-rate --output-dir"
)
CURL_SENDS = ("-d", "--data", "--data-binary", "--data-raw", "--data-ascii", "--data-urlencode",
              "-F", "--form", "-T", "--upload-file", "--json")  # fmt: skip
WGET_VALUES = option_set(
    "-O --output-document -o --output-file -a -P --directory-prefix -e --execute -U "
    "--user-agent --header --post-data --post-file --body-data --body-file --method -i "
    "--input-file --user --password -t --tries -T --timeout -Q"
)
WGET_SENDS = ("--post-data", "--post-file", "--body-data", "--body-file")
SSH_VALUES = option_set("-b -c -D -E -e -F -I -i -J -L -l -m -O -o -p -Q -R -S -W -w -B")
SCP_VALUES = option_set("-P -i -o -F -c -l -S -J")
SENDING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOST = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?(\[[^\]]+\]|[^:/?#\s]+)", re.I)


def host_of(url: str) -> str:
    match = _HOST.match(url)
    return match.group(1).lower() if match else url


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def _contact(inv: Invocation, urls: list[str], *, sends: bool) -> Iterator[Finding]:
    hosts = [host_of(u) for u in urls] or ["an unknown host"]
    remote = [h for h in hosts if not is_local(h)]
    if not remote:
        return
    if sends:
        yield Finding(60, f"sends data to {remote[0]} ({inv.shown})", frozenset({NETWORK, UPLOAD}))
    else:
        yield Finding(45, f"downloads from {remote[0]} ({inv.shown})", frozenset({NETWORK}))


def curl(inv: Invocation) -> Iterator[Finding]:
    urls = [w.text for w in inv.operands(CURL_VALUES)]
    urls += [u for u in [inv.value("--url")] if u]
    method = (inv.value("-X", "--request") or "").upper()
    sends = inv.has(*CURL_SENDS) or method in SENDING_METHODS
    for i, text in enumerate(inv.args[:-1]):
        if text in CURL_SENDS or text in ("-K", "--config"):
            value = inv.args[i + 1]
            upload = value.split("=@", 1)[1] if "=@" in value else value.lstrip("@")
            if value.startswith("@") or "=@" in value or text in ("-T", "--upload-file", "-K"):
                found = read_risk(inv.where(upload), inv.shown)
                if found:
                    yield found
    output = inv.value("-o", "--output")
    if output and output != "-":
        found = write_risk(inv.where(output), inv.shown)
        if found:
            yield found
    yield from _contact(inv, urls, sends=sends)


def wget(inv: Invocation) -> Iterator[Finding]:
    urls = [w.text for w in inv.operands(WGET_VALUES)]
    method = (inv.value("--method") or "").upper()
    sends = inv.has(*WGET_SENDS) or method in SENDING_METHODS
    for option in ("--post-file", "--body-file"):
        sent = inv.value(option)
        found = read_risk(inv.where(sent), inv.shown) if sent else None
        if found:
            yield found
    for option in ("-O", "--output-document", "-P", "--directory-prefix"):
        output = inv.value(option)
        found = write_risk(inv.where(output), inv.shown) if output and output != "-" else None
        if found:
            yield found
    yield from _contact(inv, urls, sends=sends)


def downloader(inv: Invocation) -> Iterator[Finding]:
    operands = [w.text for w in inv.operands()]
    urls = [o for o in operands if "://" in o or "." in o.split("/")[0]]
    methods = {o.upper() for o in operands} & SENDING_METHODS
    sends = bool(methods) or any("=" in o and "://" not in o for o in operands)
    yield from _contact(inv, urls[:1], sends=sends)


def raw_socket(inv: Invocation) -> Iterator[Finding]:
    tags = frozenset({NETWORK, UPLOAD})
    text = " ".join(inv.args)
    if inv.name == "socat" and re.search(r"\b(exec|system):", text, re.I):
        yield Finding(100, f"connects a shell to a network socket ({inv.shown})", tags)
    elif inv.has("-e", "-c", "--exec", "--sh-exec", "--lua-exec") and inv.name != "telnet":
        yield Finding(100, f"opens a remote shell over the network ({inv.shown})", tags)
    elif inv.has("-l", "--listen") or "listen" in text.lower():
        yield Finding(60, f"listens for network connections ({inv.shown})", tags)
    else:
        hosts = [w.text for w in inv.operands(frozenset({"-p", "-w", "-s", "-i", "-q"}))]
        remote = [h for h in hosts if not h.isdigit() and not is_local(h)]
        if remote or not hosts:
            where = remote[0] if remote else "a host"
            yield Finding(60, f"opens a raw network connection to {where} ({inv.shown})", tags)


def ssh(inv: Invocation) -> Iterator[Finding]:
    operands = inv.operands(SSH_VALUES)
    host = host_of(operands[0].text) if operands else "a host"
    tags = frozenset({NETWORK, UPLOAD})
    if inv.has("-R", "-L", "-D", "-w"):
        yield Finding(65, f"opens an SSH tunnel through {host} ({inv.shown})", tags)
    else:
        yield Finding(60, f"opens an SSH session to {host} ({inv.shown})", tags)


def ssh_commands(inv: Invocation) -> list[str]:
    """The remote command of `ssh host cmd ...`: it runs in a shell on the other side."""
    operands = inv.operands(SSH_VALUES)
    return [shlex.join(w.text for w in operands[1:])] if len(operands) > 1 else []


def remote_copy(inv: Invocation) -> Iterator[Finding]:
    operands = inv.operands(SCP_VALUES)
    remote = [w.text for w in operands if REMOTE.match(w.text)]
    if not remote:
        if inv.name == "rsync":
            yield from writer(inv)
        return
    for word in operands:
        if not REMOTE.match(word.text):
            found = read_risk(inv.where(word), inv.shown)
            if found:
                yield found
    tags = frozenset({NETWORK, UPLOAD})
    yield Finding(60, f"copies files to or from {host_of(remote[0])} ({inv.shown})", tags)


def file_transfer(inv: Invocation) -> Iterator[Finding]:
    tags = frozenset({NETWORK, UPLOAD})
    yield Finding(60, f"transfers files over the network ({inv.shown})", tags)


def scanner(inv: Invocation) -> Iterator[Finding]:
    yield Finding(75, f"scans or attacks hosts on the network ({inv.shown})", frozenset({NETWORK}))


def sniffer(inv: Invocation) -> Iterator[Finding]:
    yield Finding(60, f"captures network traffic ({inv.shown})")


RULES: dict[str, Rule] = {
    "curl": curl,
    "wget": wget,
    **dict.fromkeys(DOWNLOADERS - {"curl", "wget"}, downloader),
    **dict.fromkeys(RAW_SOCKETS, raw_socket),
    **dict.fromkeys(FILE_TRANSFER, file_transfer),
    **dict.fromkeys(SCANNERS, scanner),
    **dict.fromkeys(SNIFFERS, sniffer),
    "ssh": ssh,
    "scp": remote_copy,
    "rsync": remote_copy,
}
