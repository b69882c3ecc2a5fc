"""Where commands run. `LocalSandbox` runs them as subprocesses of this host in the
workspace directory, each in its own process group so that a timeout or a cancellation
kills the whole tree it started, not just the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MAX_OUTPUT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int | None
    output: str
    timed_out: bool
    duration_s: float
    truncated: bool


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class LocalSandbox:
    """Runs commands on this host, in the workspace, without isolation."""

    name = "local"

    async def run(
        self,
        command: str,
        cwd: Path,
        *,
        timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        max_output: int = MAX_OUTPUT_BYTES,
    ) -> CommandResult:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        assert process.stdout is not None
        kept = bytearray()
        dropped = 0

        async def collect() -> None:
            nonlocal dropped
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                room = max_output - len(kept)
                kept.extend(chunk[:room])
                dropped += max(0, len(chunk) - room)
            await process.wait()

        timed_out = False
        try:
            await asyncio.wait_for(collect(), timeout_s)
        except TimeoutError:
            timed_out = True
            _kill_group(process)
            await process.wait()
        except BaseException:
            _kill_group(process)
            with contextlib.suppress(Exception):
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
