"""Programs that delete, overwrite or re-permission files: `rm`, `find -delete`, `shred`,
`chmod`, `chown`, `dd`, disk tools, and the copiers and writers (`cp`, `mv`, `tee`,
`sed -i`, `tar -C`, ...). Where a path lands is scored by `path_risk`, the same way for
every program."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from keel.guardrails.findings import Finding
from keel.guardrails.invocation import Invocation, Rule, option_set
from keel.guardrails.path_risk import delete_risk, read_risk, write_risk
from keel.guardrails.paths import Place
from keel.guardrails.shell_parse import Word

# program: (the operands it writes: "last" or "all", its options that take a value)
WRITERS: dict[str, tuple[str, frozenset[str]]] = {
    "cp": ("last", frozenset({"-t", "--target-directory", "-S", "--suffix"})),
    "mv": ("last", frozenset({"-t", "--target-directory", "-S", "--suffix"})),
    "install": ("last", frozenset({"-m", "--mode", "-o", "--owner", "-g", "--group", "-t"})),
    "ln": ("last", frozenset({"-t", "--target-directory", "-S", "--suffix"})),
    "rsync": ("last", frozenset({"-e", "--rsh", "--exclude", "--include", "-f", "--filter"})),
    "tee": ("all", frozenset()),
    "touch": ("all", frozenset({"-t", "-d", "-r", "--date", "--reference"})),
    "mkdir": ("all", frozenset({"-m", "--mode"})),
    "truncate": ("all", frozenset({"-s", "--size", "-r", "--reference"})),
}
DISK_TOOLS = frozenset(
    {"mke2fs", "mkswap", "fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted", "wipefs",
     "blkdiscard", "badblocks"}
)  # fmt: skip
FIND_FILTERS = option_set(
    "-name -iname -path -ipath -wholename -iwholename -regex -iregex -newer -mtime -mmin "
    "-atime -amin -ctime -cmin -size -empty -user -group -perm -inum -samefile -links"
)
FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
REMOTE = re.compile(r"^([\w.-]+@)?[\w.-]+:|^rsync://")
"""`host:path` or `rsync://`: an rsync or scp operand on another machine."""


def rm(inv: Invocation) -> Iterator[Finding]:
    recursive = inv.has("-r", "-R", "--recursive")
    if inv.has("--no-preserve-root"):
        yield Finding(100, f"deletes with --no-preserve-root ({inv.shown})")
    for word in inv.operands():
        found = delete_risk(inv.where(word), inv.shown, recursive=recursive)
        if found:
            yield found


def unlink(inv: Invocation) -> Iterator[Finding]:
    for word in inv.operands():
        found = delete_risk(inv.where(word), inv.shown, recursive=False)
        if found:
            yield found


def shred(inv: Invocation) -> Iterator[Finding]:
    for word in inv.operands(frozenset({"-n", "--iterations", "-s", "--size"})):
        where = inv.where(word)
        if where.place is Place.DEVICE:
            yield Finding(100, f"overwrites the disk {where.shown} ({inv.shown})")
        else:
            yield Finding(60, f"destroys {where.shown} beyond recovery ({inv.shown})")


def find(inv: Invocation) -> Iterator[Finding]:
    starts, filters, _, deletes = _find_parts(inv)
    if not deletes:
        return
    for start in starts:
        where = inv.where(start)
        if not filters:
            found = delete_risk(where, inv.shown, recursive=True)
            if found:
                yield found
        elif where.place in (Place.ROOT, Place.SYSTEM, Place.HOME):
            score = 70 if where.place is Place.HOME else 85
            yield Finding(score, f"deletes matching files all over {where.shown} ({inv.shown})")
        elif where.place.outside:
            yield Finding(
                60, f"deletes files outside the workspace, in {where.shown} ({inv.shown})"
            )


def find_commands(inv: Invocation) -> list[str]:
    """The commands `find -exec` runs, with `{}` standing for what find may pass."""
    starts, filters, names, _ = _find_parts(inv)
    start = starts[0].text
    within = start.rstrip("/") + "/"
    found = within + names[0] if names else start if filters else within + "*"
    return [
        shlex.join(found if w.text == "{}" else w.text for w in command)
        for command in _find_execs(inv)
    ]


DELETING_PROGRAMS = frozenset({"rm", "shred", "unlink"})


def _find_parts(inv: Invocation) -> tuple[list[Word], list[str], list[str], bool]:
    """Start points, filters, `-name` patterns, and whether matches are deleted."""
    words = list(inv.words[1:])
    while words and words[0].text in ("-H", "-L", "-P"):
        words.pop(0)
    starts: list[Word] = []
    while words and not words[0].text.startswith(("-", "(", "!", ")")):
        starts.append(words.pop(0))
    filters: list[str] = []
    names: list[str] = []
    deletes = False
    for i, word in enumerate(words):
        if word.text == "-delete":
            deletes = True
        elif word.text in FIND_FILTERS:
            filters.append(word.text)
            if word.text in ("-name", "-iname") and i + 1 < len(words):
                names.append(words[i + 1].text)
    deletes = deletes or any(
        command[0].text.rsplit("/", 1)[-1] in DELETING_PROGRAMS for command in _find_execs(inv)
    )
    return starts or [Word(".")], filters, names, deletes


def _find_execs(inv: Invocation) -> list[list[Word]]:
    execs: list[list[Word]] = []
    words = inv.words[1:]
    i = 0
    while i < len(words):
        if words[i].text in FIND_EXEC:
            command: list[Word] = []
            i += 1
            while i < len(words) and words[i].text not in (";", "+"):
                command.append(words[i])
                i += 1
            if command:
                execs.append(command)
        i += 1
    return execs


def chmod(inv: Invocation) -> Iterator[Finding]:
    recursive = inv.has("-R", "--recursive")
    operands = inv.operands()
    if inv.has("--reference"):
        mode, targets = "", operands
    elif operands:
        mode, targets = operands[0].text, operands[1:]
    else:
        return
    world, setuid = _world_writable(mode), _setuid(mode)
    for word in targets:
        where = inv.where(word)
        shown, outside = where.shown, where.place.outside
        if where.place in (Place.ROOT, Place.SYSTEM, Place.HOME, Place.DEVICE):
            score = 90 if recursive else 75
            yield Finding(score, f"changes permissions of {shown} ({inv.shown})")
        elif world and recursive:
            yield Finding(
                90 if outside else 60,
                f"makes everything in {shown} writable by anyone ({inv.shown})",
            )
        elif world:
            yield Finding(70 if outside else 45, f"makes {shown} writable by anyone ({inv.shown})")
        elif setuid:
            yield Finding(70, f"sets the setuid or setgid bit on {shown} ({inv.shown})")
        elif outside:
            yield Finding(50, f"changes permissions outside the workspace: {shown} ({inv.shown})")


def _world_writable(mode: str) -> bool:
    if re.fullmatch(r"[0-7]{3,4}", mode):
        return int(mode[-1]) & 2 == 2
    for clause in mode.split(","):
        match = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
        if match and match[2] in "+=" and "w" in match[3] and re.search("[oa]", match[1]):
            return True
    return False


def _setuid(mode: str) -> bool:
    if re.fullmatch(r"[0-7]{4}", mode):
        return int(mode[0]) & 6 != 0
    return bool(re.search(r"[ug]*\+[rwx]*s", mode))


def chown(inv: Invocation) -> Iterator[Finding]:
    recursive = inv.has("-R", "--recursive")
    operands = inv.operands()
    targets = operands if inv.has("--reference") else operands[1:]
    for word in targets:
        where = inv.where(word)
        if where.place in (Place.ROOT, Place.SYSTEM, Place.HOME, Place.DEVICE):
            score = 90 if recursive else 75
            yield Finding(score, f"changes the owner of {where.shown} ({inv.shown})")
        elif where.place.outside:
            yield Finding(60, f"changes owners outside the workspace: {where.shown} ({inv.shown})")
        else:
            yield Finding(25, f"changes the owner of {where.shown} ({inv.shown})")


def dd(inv: Invocation) -> Iterator[Finding]:
    for text in inv.args:
        key, _, value = text.partition("=")
        if key == "of":
            found = write_risk(inv.where(value), inv.shown)
        elif key == "if":
            where = inv.where(value)
            found = read_risk(where, inv.shown)
            if where.place is Place.DEVICE:
                found = Finding(60, f"reads the raw device {where.shown} ({inv.shown})")
        else:
            continue
        if found:
            yield found


def disk_tool(inv: Invocation) -> Iterator[Finding]:
    operands = inv.operands()
    for word in operands:
        where = inv.where(word)
        if where.place is Place.DEVICE:
            yield Finding(100, f"formats or repartitions the disk {where.shown} ({inv.shown})")
            return
    yield Finding(50, f"formats or repartitions a file system ({inv.shown})")


def writer(inv: Invocation) -> Iterator[Finding]:
    which, values = WRITERS[inv.name]
    operands = [w for w in inv.operands(values) if not REMOTE.match(w.text)]
    target = inv.value("-t", "--target-directory")
    if target is not None:
        written, sources = [Word(target)], operands
    elif which == "last" and len(operands) >= 2:
        written, sources = operands[-1:], operands[:-1]
    elif which == "last":
        written, sources = [], operands
    else:
        written, sources = operands, []
    for word in written:
        where = inv.where(word)
        if inv.name == "mv" and where.place is Place.STREAM:
            yield Finding(70, f"moves files onto {where.shown}, destroying them ({inv.shown})")
        found = write_risk(where, inv.shown)
        if found:
            yield found
    if inv.name == "mv":
        for word in sources:
            where = inv.where(word)
            if where.place.outside or where.internal:
                found = delete_risk(where, inv.shown, recursive=True)
                if found:
                    yield found


def sed(inv: Invocation) -> Iterator[Finding]:
    if not (inv.has("--in-place") or any(a.startswith("-i") for a in inv.args)):
        return
    operands = inv.operands(frozenset({"-e", "--expression", "-f", "--file", "-l"}))
    files = operands if inv.has("-e", "--expression", "-f", "--file") else operands[1:]
    for word in files:
        found = write_risk(inv.where(word), inv.shown)
        if found:
            yield found


def tar(inv: Invocation) -> Iterator[Finding]:
    first = inv.args[0] if inv.args else ""
    extracts = inv.has("-x", "--extract", "--get") or (not first.startswith("-") and "x" in first)
    directory = inv.value("-C", "--directory")
    if extracts and directory is not None:
        found = write_risk(inv.where(directory), inv.shown)
        if found:
            yield found


def unzip(inv: Invocation) -> Iterator[Finding]:
    directory = inv.value("-d")
    if directory is not None:
        found = write_risk(inv.where(directory), inv.shown)
        if found:
            yield found


RULES: dict[str, Rule] = {
    "rm": rm,
    "rmdir": unlink,
    "unlink": unlink,
    "shred": shred,
    "find": find,
    "chmod": chmod,
    "chown": chown,
    "chgrp": chown,
    "dd": dd,
    "sed": sed,
    "gsed": sed,
    "tar": tar,
    "unzip": unzip,
    **dict.fromkeys(DISK_TOOLS, disk_tool),
    **dict.fromkeys(WRITERS, writer),
}
