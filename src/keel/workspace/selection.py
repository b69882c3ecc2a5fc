"""Choosing the execution backend: bubblewrap by default on Linux, a container engine when
asked for, and the host itself only when the policy allows unsandboxed execution.

Selection never silently weakens isolation: when the wanted backend cannot run here,
`select_sandbox` raises `SandboxUnavailable` (what is missing and how to fix it) unless
unsandboxed execution is allowed, and `describe_sandbox` gives Keel the one line to print
at start either way.
"""

from __future__ import annotations

import sys

from keel.errors import ConfigError
from keel.workspace.bubblewrap import BubblewrapSandbox
from keel.workspace.container import DEFAULT_IMAGE, ContainerSandbox
from keel.workspace.local import LocalSandbox
from keel.workspace.sandbox import Sandbox, SandboxUnavailable

BACKENDS = ("bubblewrap", "docker", "podman", "container", "local")
"""`container` means docker or podman, whichever answers first."""
ALIASES = {"bwrap": "bubblewrap", "auto": None, "default": None}


def _backend(preference: str | None) -> str | None:
    if preference is None:
        return None
    wanted = preference.strip().lower()
    if wanted in ALIASES:
        return ALIASES[wanted]
    if wanted not in BACKENDS:
        raise ConfigError(
            f"unknown sandbox '{preference}': choose one of {', '.join(BACKENDS)} (or auto)"
        )
    return wanted


def _isolating(backend: str | None, container_image: str) -> Sandbox:
    if backend == "bubblewrap":
        return BubblewrapSandbox()
    if backend is None:
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailable(
                f"bubblewrap, the default sandbox, needs Linux (this is {sys.platform}): "
                "choose the docker or podman sandbox, or allow unsandboxed execution in the "
                "policy"
            )
        return BubblewrapSandbox()
    engine = None if backend == "container" else backend
    return ContainerSandbox(engine, image=container_image)


def _choose(
    preference: str | None, allow_unsandboxed: bool, container_image: str
) -> tuple[Sandbox, str | None]:
    """The backend, and why the wanted one was passed over (None when it was not)."""
    backend = _backend(preference)
    if backend == "local":
        if not allow_unsandboxed:
            raise SandboxUnavailable(
                "the local sandbox runs commands on the host without isolation: allow "
                "unsandboxed execution in the policy to use it, or choose bubblewrap"
            )
        return LocalSandbox(), None
    try:
        return _isolating(backend, container_image), None
    except SandboxUnavailable as error:
        if not allow_unsandboxed:
            raise
        return LocalSandbox(), str(error)


def select_sandbox(
    preference: str | None = None,
    *,
    allow_unsandboxed: bool = False,
    container_image: str = DEFAULT_IMAGE,
) -> Sandbox:
    """The backend commands run in.

    `preference`: None or "auto" (bubblewrap on Linux), "bubblewrap", "docker", "podman",
    "container" (either engine) or "local". When it cannot run here, the host itself
    (`LocalSandbox`) if `allow_unsandboxed`, else `SandboxUnavailable`. Probes run once per
    executable; this call may block for them, so call it off the event loop.
    """
    sandbox, _ = _choose(preference, allow_unsandboxed, container_image)
    return sandbox


def describe_sandbox(
    preference: str | None = None,
    *,
    allow_unsandboxed: bool = False,
    container_image: str = DEFAULT_IMAGE,
) -> str:
    """One line for Keel to print at start: where commands will run, or that they will be
    refused and how to fix it."""
    try:
        sandbox, passed_over = _choose(preference, allow_unsandboxed, container_image)
    except SandboxUnavailable as error:
        return f"sandbox: none, so Keel refuses to run commands (L3 and above): {error}"
    if passed_over is not None:
        return f"sandbox: none ({passed_over}); {sandbox.describe()}"
    return f"sandbox: {sandbox.describe()}"
