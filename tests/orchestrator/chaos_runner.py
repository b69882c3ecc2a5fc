"""The chaos test's worker process: runs (or resumes) every unfinished session of a store.

    python chaos_runner.py HOME SESSIONS WORKSPACE LATENCY_MS

The first run creates SESSIONS sessions of a multi-agent workflow: a planner fans out three
parallel sub-tasks, each of which calls `run_command` once to append a line to
`effects.log` (the side-effect counter), then answers; a reviewer joins them.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from keel import Keel
from keel.models import Message, ToolCall, ToolSpec, register_script

PLAN = {"tasks": [{"goal": f"part {i}", "role": "worker", "dependsOn": []} for i in range(3)]}


def worker(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
    prompt = next(m.content for m in messages if m.role == "user")
    goal = prompt.splitlines()[0]
    if not any(m.role == "tool" for m in messages):
        session = re.search(r"session goal: (.+)$", prompt, flags=re.M)
        tag = f"{session[1] if session else '?'}-{goal.removeprefix('Goal: ')}".replace(" ", "-")
        command = f"echo {tag} >> effects.log"
        call = ToolCall(id="c1", name="run_command", arguments={"command": command})
        return Message(role="assistant", tool_calls=[call])
    return f"finished {goal.removeprefix('Goal: ')}"


AGENTS = [
    {"name": "planner", "role": "planner", "model": "scripted:chaos-planner"},
    *[
        {
            "name": f"w{i}",
            "role": "worker",
            "model": "scripted:chaos-worker",
            "tools": ["run_command"],
            "permissions": [{"level": "L3", "scope": "shell:exec"}],
        }
        for i in range(3)
    ],
    {"name": "reviewer", "role": "reviewer", "model": "scripted:reviewer"},
]


async def main(home: Path, count: int, workspace: Path, latency_ms: int) -> None:
    register_script("chaos-planner", [json.dumps(PLAN)])
    register_script("chaos-worker", worker)
    async with await Keel.open(home) as keel:
        sessions = await keel.sessions.list(limit=10_000)
        if not sessions:
            for index in range(count):
                config = {
                    "workspace": str(workspace),
                    "scriptedLatencyMs": latency_ms,
                    # An interrupted command waits for a person; here nobody answers, so
                    # the deadline denies it quickly and the agent goes on.
                    "approvalTimeoutS": 0.5,
                }
                sessions.append(await keel.create_session(f"chaos {index}", AGENTS, config=config))
        pending = [s for s in sessions if not s.status.is_final]
        await asyncio.gather(*(keel.run(s.id) for s in pending))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])))
