"""What a path named by a tool call or a command means: where it lands (the workspace, a
scratch directory, the home directory, system directories, a device) and whether it holds
credentials, starts a login shell or is version-control internals.

It computes from the text alone and never touches the file system: symbolic links are not
followed, and a path built from a variable (`$DIR/x`) is `UNKNOWN`.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath


class Place(StrEnum):
    WORKSPACE = "the workspace root"
    INSIDE = "inside the workspace"
    SCRATCH = "a scratch directory"
    HOME = "the home directory"
    HOME_FILES = "a file in the home directory"
    ROOT = "/"
    SYSTEM = "a system directory"
    OUTSIDE = "outside the workspace"
    DEVICE = "a device"
    STREAM = "a standard stream"
    SOCKET = "a network socket"
    UNKNOWN = "a path built from a variable"

    @property
    def outside(self) -> bool:
        """Outside the workspace and not a scratch directory or a harmless stream."""
        return self in _OUTSIDE


_OUTSIDE = frozenset(
    {Place.HOME, Place.HOME_FILES, Place.ROOT, Place.SYSTEM, Place.OUTSIDE, Place.DEVICE}
)

SYSTEM_DIRECTORIES = (
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/sys",
    "/proc", "/root", "/var", "/opt", "/srv", "/snap", "/run", "/mnt", "/media", "/home",
    "/Users", "/System", "/Library", "/Applications", "/private",
)  # fmt: skip
SCRATCH_DIRECTORIES = ("/tmp", "/var/tmp", "/private/tmp", "/dev/shm")
STREAMS = frozenset(
    {"/dev/null", "/dev/zero", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/tty",
     "/dev/random", "/dev/urandom", "/dev/full"}
)  # fmt: skip

# A file name (the whole last segment) that holds credentials, and what it is.
SECRET_NAMES: tuple[tuple[str, str], ...] = (
    (r"\.env(\.[\w.-]+)?", "an environment file with secrets"),
    (r"\.envrc", "an environment file with secrets"),
    (r"id_(rsa|dsa|ecdsa|ed25519)(_sk)?", "a private SSH key"),
    (r".+\.(pem|key|p12|pfx|jks|keystore|ppk|kdbx)", "a private key or keystore"),
    (r"[._]netrc", "a .netrc with login passwords"),
    (r"\.pgpass", "a PostgreSQL password file"),
    (r"\.git-credentials", "stored git credentials"),
    (r"\.(npmrc|pypirc)", "a package registry token"),
    (r"\.vault-token", "a Vault token"),
    (r"\.htpasswd", "a password file"),
    (r"\.\w*_?history", "a shell history"),
    (r"secrets?(\.\w+)?", "a secrets file"),
    (r"credentials(\.json|\.csv|\.ya?ml)?", "a credentials file"),
    (r"service[-_]?account.*\.json", "a cloud service-account key"),
    (r"terraform\.tfstate(\.backup)?", "Terraform state (it holds secrets)"),
    (r"master\.key", "a Rails master key"),
)
NOT_SECRET_NAMES = r"\.env\.(example|sample|template|dist|defaults|schema)|.+\.pub|secrets?\.py"

# A place (searched in the absolute path) that holds credentials, and what it is.
SECRET_PLACES: tuple[tuple[str, str], ...] = (
    (r"/\.ssh(/|$)", "SSH keys and config"),
    (r"/\.aws(/|$)", "AWS credentials"),
    (r"/\.gnupg(/|$)", "GPG keys"),
    (r"/\.kube/config$", "Kubernetes credentials"),
    (r"/\.docker/config\.json$", "Docker registry credentials"),
    (r"/\.config/(gcloud|gh)(/|$)", "cloud CLI credentials"),
    (r"/\.azure(/|$)", "Azure credentials"),
    (r"/\.password-store(/|$)", "a password store"),
    (r"/Library/Keychains(/|$)", "the macOS keychains"),
    (r"^/etc/(shadow|gshadow|sudoers)(/|$)", "the system's password hashes or sudo rules"),
    (r"^/etc/ssh/ssh_host_\w+_key$", "the host's private SSH key"),
    (r"^/proc/[^/]+/environ$", "a process's environment variables"),
)
STARTUP_FILES = frozenset(
    {".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv",
     ".zlogin", ".cshrc", ".tcshrc", ".kshrc", ".inputrc", "config.fish"}
)  # fmt: skip
WHOLE_DIRECTORY_GLOBS = frozenset({"*", ".*", "*.*", "{*,.*}", "**", ".[!.]*"})

_SECRET_NAMES = [(re.compile(p), what) for p, what in SECRET_NAMES]
_NOT_SECRET = re.compile(NOT_SECRET_NAMES)
_SECRET_PLACES = [(re.compile(p), what) for p, what in SECRET_PLACES]
_HOME_VARIABLE = re.compile(r"^(\$HOME|\$\{HOME\})(?=/|$)")


@dataclass(frozen=True, slots=True)
class Location:
    raw: str
    place: Place
    path: str
    """The normalized absolute path; the raw text when the place is UNKNOWN."""
    shown: str
    """How to name it to a human: relative inside the workspace, `~/..` in the home."""
    secret: str | None = None
    """What credentials it holds, e.g. "a private SSH key"."""
    startup: bool = False
    """A shell startup file in the home directory: writing it runs code at every login."""
    internal: str | None = None
    """Version-control or Keel internals: "a git hook", "git config", "git internals"."""
    everything: bool = False
    """The last segment is a bare `*`: the whole directory `path` names."""

    @property
    def subject(self) -> str:
        """The text policy path globs match: workspace-relative inside it, else absolute."""
        return self.shown if self.place in (Place.WORKSPACE, Place.INSIDE) else self.path


@dataclass(frozen=True, slots=True)
class Locator:
    """Locates paths for one workspace and one home directory."""

    workspace: PurePosixPath
    home: PurePosixPath

    @classmethod
    def for_workspace(cls, workspace: Path, home: Path | None = None) -> Locator:
        root = PurePosixPath(workspace.resolve().as_posix())
        return cls(root, PurePosixPath((home or Path.home()).as_posix()))

    def locate(self, raw: str, cwd: PurePosixPath | None) -> Location:
        """Where `raw` lands for a command run in `cwd` (None: unknown, after `cd $X`)."""
        text = _HOME_VARIABLE.sub(str(self.home), raw)
        if text == "~" or text.startswith("~/"):
            text = str(self.home) + text[1:]
        elif text.startswith("~"):
            text = "/home/" + text[1:]
        if "$" in text or "`" in text or (cwd is None and not text.startswith("/")):
            return self.unknown(raw, text)
        base = posixpath.normpath(posixpath.join(str(cwd), text) if cwd else text)
        if base.startswith("//"):
            base = "/" + base.lstrip("/")
        everything = posixpath.basename(base) in WHOLE_DIRECTORY_GLOBS
        if everything:
            base = posixpath.dirname(base) or "/"
        place = self._place(base)
        shown = self._shown(base, place)
        if everything:
            shown = f"{shown.rstrip('/')}/*"
        return Location(
            raw=raw,
            place=place,
            path=base,
            shown=shown,
            secret=secret_kind(base),
            startup=place is Place.HOME_FILES and _is_startup_file(base, str(self.home)),
            internal=_internal(base, str(self.workspace)) if place is Place.INSIDE else None,
            everything=everything,
        )

    def unknown(self, raw: str, text: str | None = None) -> Location:
        """A path the shell computes when the command runs."""
        secret = secret_kind(text or raw)
        return Location(raw=raw, place=Place.UNKNOWN, path=raw, shown=raw, secret=secret)

    def _place(self, path: str) -> Place:
        workspace, home = str(self.workspace), str(self.home)
        if path.startswith("/dev/"):
            if path in STREAMS or path.startswith("/dev/fd/"):
                return Place.STREAM
            if path.startswith(("/dev/tcp/", "/dev/udp/")):
                return Place.SOCKET
            return Place.DEVICE
        if _under(path, workspace):
            return Place.WORKSPACE if path == workspace else Place.INSIDE
        if path == "/":
            return Place.ROOT
        if _under(path, home):
            return Place.HOME if path == home else Place.HOME_FILES
        scratch = (*SCRATCH_DIRECTORIES, tempfile.gettempdir())
        neighbours = str(self.workspace.parent)  # other projects, even in a scratch directory
        if any(_under(path, d) and path != d for d in scratch) and not (
            _under(path, neighbours) and neighbours not in scratch
        ):
            return Place.SCRATCH
        if any(_under(path, d) for d in SYSTEM_DIRECTORIES):
            return Place.SYSTEM
        return Place.OUTSIDE

    def _shown(self, path: str, place: Place) -> str:
        if place is Place.WORKSPACE:
            return "."
        if place is Place.INSIDE:
            return path[len(str(self.workspace)) + 1 :]
        if place is Place.HOME:
            return "~"
        if place is Place.HOME_FILES:
            return "~/" + path[len(str(self.home)) + 1 :]
        return path


def secret_kind(path: str) -> str | None:
    """What credentials `path` holds, or None."""
    name = posixpath.basename(path.rstrip("/"))
    if _NOT_SECRET.fullmatch(name):
        return None
    for pattern, what in _SECRET_NAMES:
        if pattern.fullmatch(name):
            return what
    for pattern, what in _SECRET_PLACES:
        if pattern.search(path):
            return what
    return None


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _is_startup_file(path: str, home: str) -> bool:
    name = posixpath.basename(path)
    return name in STARTUP_FILES and (
        posixpath.dirname(path) == home or path.endswith("/.config/fish/config.fish")
    )


def _internal(path: str, workspace: str) -> str | None:
    parts = path[len(workspace) + 1 :].split("/")
    if parts[0] == ".keel":
        return "Keel's own state (.keel)"
    if ".git" not in parts:
        return None
    after = parts[parts.index(".git") + 1 :]
    if after[:1] == ["hooks"]:
        return "a git hook (it runs at every commit)"
    if after[:1] == ["config"]:
        return "the git config (it can run commands)"
    return "git internals (.git)"
