"""Running one backend's command line: output capped, a deadline, and the whole process
group killed at the end. Every backend goes through `run_process`, so timeouts and output
limits behave the same whichever one runs the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from keel.workspace.sandbox import CommandResult, SandboxUnavailable


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    max_output: int,
    on_kill: Callable[[], Awaitable[None]] | None = None,
) -> CommandResult:
    """Run `argv` in a process group of its own, stdout and stderr together.

    The group is killed when the command ends (background jobs go with it), on timeout,
    and on cancellation; `on_kill` then cleans up what lives outside the group (a
    container).
    """
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    kept = bytearray()
    dropped = 0

    async def collect() -> None:
        nonlocal dropped
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            room = max(0, max_output - len(kept))
            kept.extend(chunk[:room])
            dropped += max(0, len(chunk) - room)
        await process.wait()

    timed_out = False
    try:
        await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        timed_out = True
        _kill_group(process)
        if on_kill is not None:
            await on_kill()
        await process.wait()
    except BaseException:
        _kill_group(process)
        with contextlib.suppress(Exception):
            if on_kill is not None:
                await asyncio.shield(on_kill())
            await asyncio.shield(process.wait())
        raise
    finally:
        # Children that outlived the shell (background jobs) go with it.
        _kill_group(process)
    output = kept.decode("utf-8", errors="replace")
    if dropped:
        output += f"\n[cut: {dropped} more bytes of output]"
    return CommandResult(
        exit_code=None if timed_out else process.returncode,
        output=output,
        timed_out=timed_out,
        duration_s=time.perf_counter() - started,
        truncated=bool(dropped),
    )


def memory_limit_argv(memory_mb: int | None) -> list[str]:
    """The `prlimit` prefix that caps each process's data segment (RLIMIT_DATA: the memory
    it allocates, not the address space it merely reserves) at `memory_mb`."""
    if memory_mb is None:
        return []
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be positive, not {memory_mb}")
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise SandboxUnavailable(
            "a memory limit needs prlimit, which is not on PATH: install util-linux"
        )
    limit = memory_mb * 1024 * 1024
    return [prlimit, f"--data={limit}:{limit}", "--"]


def probe(argv: list[str], timeout_s: float, failed: str) -> str | None:
    """Run a probe command: None when it succeeds, else why not (its last line of output,
    or `failed` with the exit code)."""
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).decode("utf-8", errors="replace").strip()
    return said.splitlines()[-1] if said else f"{failed} exited with code {done.returncode}"
