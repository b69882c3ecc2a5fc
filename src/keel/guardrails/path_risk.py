"""How risky it is to read, write or delete a location. The file tools, shell redirections
and the command rules (`cp`, `tee`, `rm`, `find -delete`, ...) all ask here, so that a
write to `/etc/passwd` scores the same whichever way it is made."""

from __future__ import annotations

import fnmatch

from keel.guardrails.findings import SECRET, Finding
from keel.guardrails.paths import Location, Place

BUILD_OUTPUTS = (
    "build", "dist", "out", "target", "node_modules", ".venv", "venv", "__pycache__",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", "coverage", "htmlcov",
    ".coverage", ".next", ".nuxt", ".cache", ".parcel-cache", ".turbo", "tmp", ".tmp",
    ".eggs", "*.egg-info", "_build", "site", ".gradle", "*.pyc", "*.o", "*.log", ".angular",
)  # fmt: skip
"""Names whose deletion is routine: build outputs, caches, virtual environments."""
CACHES = frozenset(
    {".cache", "node_modules", "__pycache__", ".npm", ".pytest_cache", ".mypy_cache",
     ".ruff_cache", ".gradle", ".pnpm-store", ".yarn"}
)  # fmt: skip
"""Folders outside the workspace whose deletion costs only a re-download: asked, not denied."""


def read_risk(location: Location, via: str) -> Finding | None:
    if location.secret:
        return Finding(
            70, f"reads {location.shown} ({location.secret}): {via}", frozenset({SECRET})
        )
    return None


def write_risk(location: Location, via: str) -> Finding | None:
    shown, place = location.shown, location.place
    if place is Place.DEVICE:
        return Finding(100, f"writes to the device {shown}: {via}")
    if place is Place.SOCKET:
        return Finding(90, f"opens a network connection through {shown}: {via}")
    if location.startup:
        return Finding(85, f"writes the shell startup file {shown} (it runs at every login): {via}")
    if location.secret and place.outside:
        return Finding(90, f"writes {shown} ({location.secret}): {via}")
    if place in (Place.ROOT, Place.SYSTEM):
        return Finding(95, f"writes to the system path {shown}: {via}")
    if place.outside:
        return Finding(65, f"writes outside the workspace, to {shown}: {via}")
    if location.secret:
        return Finding(35, f"overwrites {shown} ({location.secret}): {via}")
    if location.internal:
        score = 80 if "hook" in location.internal else 70 if "config" in location.internal else 60
        return Finding(score, f"writes {location.internal}: {shown}: {via}")
    if place is Place.UNKNOWN:
        return Finding(20, f"writes to {shown}, a path built from a variable: {via}")
    return None


def delete_risk(location: Location, via: str, *, recursive: bool) -> Finding | None:
    shown, place = location.shown, location.place
    if place is Place.ROOT and recursive:
        return Finding(100, f"recursive delete of / ({via})")
    if place is Place.DEVICE:
        return Finding(95, f"deletes the device {shown} ({via})")
    if place is Place.SYSTEM:
        what = (
            "recursive delete of the system directory" if recursive else "deletes the system file"
        )
        return Finding(95 if recursive else 85, f"{what} {shown} ({via})")
    if place is Place.HOME and recursive:
        return Finding(95, f"recursive delete of the home directory ({via})")
    if place.outside:
        if recursive and set(shown.split("/")) & CACHES and not location.secret:
            what = f"recursive delete of a cache outside the workspace: {shown}"
            return Finding(60, f"{what} ({via})")
        if recursive:
            return Finding(85, f"recursive delete outside the workspace: {shown} ({via})")
        return Finding(60, f"deletes {shown}, outside the workspace ({via})")
    if place is Place.WORKSPACE:
        if recursive:
            return Finding(85, f"recursive delete of the whole workspace ({via})")
        if location.everything:
            return Finding(45, f"deletes every file at the workspace root ({via})")
        return None
    if place is Place.UNKNOWN:
        return _unknown_delete(location, via) if recursive else None
    if place is Place.INSIDE:
        return _inside_delete(location, via, recursive=recursive)
    return None


def _unknown_delete(location: Location, via: str) -> Finding:
    raw = location.raw
    if raw == "<stdin>":
        return Finding(60, f"recursive delete of paths read from input ({via})")
    if ":?" in raw:
        return Finding(25, f"recursive delete of {raw}, guarded against an empty variable ({via})")
    if raw.startswith(("$", '"$')):
        return Finding(
            65, f"recursive delete of {raw}: a wrong or empty variable deletes elsewhere ({via})"
        )
    return Finding(30, f"recursive delete of {raw}, a path built from a variable ({via})")


def _inside_delete(location: Location, via: str, *, recursive: bool) -> Finding | None:
    internal = location.internal or ""
    if "git" in internal:
        parts = location.shown.split("/")
        if recursive and parts[-1] == ".git":
            return Finding(85, f"deletes the git history ({location.shown}) ({via})")
        return Finding(45, f"deletes {internal}: {location.shown} ({via})")
    if internal:
        return Finding(60, f"deletes {internal} ({via})")
    if not recursive or _is_build_output(location.shown):
        return None
    if location.everything:
        return Finding(35, f"recursive delete of everything in {location.shown[:-2]} ({via})")
    return Finding(30, f"recursive delete of {location.shown} ({via})")


def _is_build_output(shown: str) -> bool:
    names = [part for part in shown.split("/") if part and part != "*"]
    return any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in BUILD_OUTPUTS)
