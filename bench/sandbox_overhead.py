"""Sandbox overhead per command: the same commands through `LocalSandbox` (a plain
subprocess) and through `BubblewrapSandbox` (read-only root, private /tmp, new PID, IPC and
network namespaces, every capability dropped), interleaved in one run.

Each round runs every command once on every side, in a rotating order; the report gives
the mean and median milliseconds per command on each side and the overhead of each
bubblewrap variant over the local run of the same command.

Target (guardrails, part 5): bubblewrap's overhead over a plain subprocess < 6 ms per
command (the median, for the sandbox `run_command` uses by default: no network).

Run: `.venv/bin/python bench/sandbox_overhead.py` (`--runs 300`, `--memory-mb 4096` to
add the per-process memory limit on both sides).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from keel.workspace import BubblewrapSandbox, LocalSandbox, Sandbox, SandboxUnavailable

TARGET_MS = 6.0
COMMANDS = ("true", f"{sys.executable} -c pass")


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    sandbox: Sandbox
    network: bool = False


@dataclass(slots=True)
class Timings:
    ms: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ms)

    @property
    def median(self) -> float:
        return statistics.median(self.ms)


async def measure(
    sides: list[Side], workspace: Path, runs: int, memory_mb: int | None
) -> dict[tuple[str, str], Timings]:
    timings = {(side.label, command): Timings() for side in sides for command in COMMANDS}
    for side in sides:  # warm up: page cache, the first exec of each binary
        for command in COMMANDS:
            await side.sandbox.run(command, workspace, network=side.network, memory_mb=memory_mb)
    for round_no in range(runs):
        shift = round_no % len(sides)
        for side in sides[shift:] + sides[:shift]:
            for command in COMMANDS:
                result = await side.sandbox.run(
                    command, workspace, network=side.network, memory_mb=memory_mb
                )
                if result.exit_code != 0:
                    raise SystemExit(f"{side.label}: '{command}' failed: {result.output}")
                timings[side.label, command].ms.append(result.duration_s * 1000)
    return timings


def bwrap_version(sandbox: BubblewrapSandbox) -> str:
    done = subprocess.run([sandbox.executable, "--version"], capture_output=True, check=False)
    return done.stdout.decode().strip() or "bubblewrap (version unknown)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="rounds (commands per side)")
    parser.add_argument("--memory-mb", type=int, default=None, help="memory limit, both sides")
    args = parser.parse_args()
    try:
        bubblewrap = BubblewrapSandbox()
    except SandboxUnavailable as error:
        print(f"cannot measure: {error}")
        return 2
    sides = [
        Side("local", LocalSandbox()),
        Side("bubblewrap", bubblewrap),
        Side("bubblewrap+net", bubblewrap, network=True),
    ]
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        timings = asyncio.run(measure(sides, Path(tmp), args.runs, args.memory_mb))

    limit = f"{args.memory_mb} MB memory limit" if args.memory_mb else "no memory limit"
    print(
        f"{bwrap_version(bubblewrap)}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {args.runs} runs per command, {limit}"
    )
    print(f"{'command':<26} {'side':<16} {'mean ms':>8} {'median ms':>10} {'overhead ms':>12}")
    verdicts: list[bool] = []
    for command in COMMANDS:
        shown = command.replace(sys.executable, "python3")
        local = timings["local", command]
        for side in sides:
            mine = timings[side.label, command]
            overhead = ""
            if side.label != "local":
                extra = mine.median - local.median
                overhead = f"{extra:+.2f}"
                if side.label == "bubblewrap":
                    verdicts.append(extra < TARGET_MS)
            print(
                f"{shown:<26} {side.label:<16} {mine.mean:8.2f} {mine.median:10.2f} {overhead:>12}"
            )
    met = all(verdicts)
    print(
        f"target: bubblewrap overhead (median, no network) < {TARGET_MS:g} ms per command: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
