"""A durable Python flow: each step's result is checkpointed, so a run that dies (Ctrl-C,
kill -9) continues at the step that was running when you start it again with the same id.

    python examples/durable_flow.py            # starts a flow and prints its session id
    python examples/durable_flow.py SESSION    # resumes that flow
"""

from __future__ import annotations

import asyncio
import sys

from keel import FunctionFlow, Keel
from keel.types import JsonObject


async def fetch(data: JsonObject) -> JsonObject:
    await asyncio.sleep(1)  # stands in for slow work
    return {"rows": [3, 1, 2]}


async def sort(data: JsonObject) -> JsonObject:
    await asyncio.sleep(1)
    return {"rows": sorted(data["rows"])}


async def report(data: JsonObject) -> JsonObject:
    return {"report": ", ".join(str(row) for row in data["rows"])}


async def main() -> None:
    async with await Keel.open() as keel:
        if len(sys.argv) > 1:
            session_id = sys.argv[1]
        else:
            session_id = (await keel.start_flow("sort rows")).id
            print(f"session {session_id} (interrupt it, then pass this id to resume)")
        state = await keel.run_flow(session_id, FunctionFlow([fetch, sort, report]))
        print(state.data["report"])


if __name__ == "__main__":
    asyncio.run(main())
