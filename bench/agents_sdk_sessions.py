"""OpenAI Agents SDK side of the concurrency benchmark: the same turns, not persisted.

Each run is an `Agent` whose model is `ToolTurnsModel`, a real implementation of the SDK's
`Model` interface that answers from a script without any network: a function call to
`read_file` of a small file for `turns` turns, then a final text answer. The tool is a
`function_tool` doing what Keel's `read_file` does (read the file off the event loop with
`asyncio.to_thread`, number its lines). Tracing is off (`set_tracing_disabled(True)` and
`RunConfig(tracing_disabled=True)`); no session is given, so nothing is persisted.

All runs go at once in this process (`asyncio.gather` over `Runner.run`), each with its
own `Agent` (`agent.clone()`, what the SDK's own conflict error suggests for concurrent
runs): runs that share one `Agent` compare, on every turn, the tool list of every other
active run of it, which costs O(runs) per turn (at 1,000 runs, less than half the turn
rate). Turn latency:
see `turn_clock.py`. Peak RSS is this process's, so run one side per process
(`concurrency.py` does).

Run: `python bench/agents_sdk_sessions.py --sessions 1000 --turns 10` (prints JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from agents import (
    Agent,
    Model,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    RunConfig,
    Runner,
    Usage,
    function_tool,
    set_tracing_disabled,
)
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.tool import Tool
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam

from keel_sessions import NOTES, NOTES_TEXT
from turn_clock import TurnClock, peak_rss_mb, percentile


def _count_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


class ToolTurnsModel(Model):
    """Asks for one `read_file` call per turn for `turns` turns, then answers "done"."""

    def __init__(self, clock: TurnClock, turns: int) -> None:
        self._clock = clock
        self._turns = turns

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else input
        self._clock.model_call(str(items[0]["content"]))
        done = sum(1 for item in items if item.get("type") == "function_call_output")
        prompt_text = "".join(
            str(item.get("content") or item.get("output") or "") for item in items
        )
        output: list[Any]
        if done < self._turns:
            call_id = f"call-{done + 1}"
            arguments = json.dumps({"path": NOTES})
            output = [
                ResponseFunctionToolCall(
                    type="function_call",
                    id=f"fc-{done + 1}",
                    call_id=call_id,
                    name="read_file",
                    arguments=arguments,
                    status="completed",
                )
            ]
            produced = arguments
        else:
            text = ResponseOutputText(type="output_text", text="done", annotations=[])
            output = [
                ResponseOutputMessage(
                    type="message",
                    id="msg-final",
                    role="assistant",
                    status="completed",
                    content=[text],
                )
            ]
            produced = "done"
        usage = Usage(
            requests=1,
            input_tokens=_count_tokens(prompt_text),
            output_tokens=_count_tokens(produced),
            total_tokens=_count_tokens(prompt_text) + _count_tokens(produced),
        )
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the benchmark does not stream")


def _read_file_tool(workspace: Path) -> Tool:
    def numbered(path: Path) -> str:
        lines = path.read_text(encoding="utf-8").splitlines()
        return "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(lines, start=1))

    @function_tool
    async def read_file(path: str) -> str:
        """Read a text file of the workspace, with line numbers.

        Args:
            path: File path relative to the workspace root.
        """
        return await asyncio.to_thread(numbered, workspace / path)

    return read_file


async def _run(workspace: Path, sessions: int, turns: int) -> dict[str, Any]:
    set_tracing_disabled(True)
    clock = TurnClock()
    agent = Agent(
        name="reader",
        instructions="You read files.",
        model=ToolTurnsModel(clock, turns),
        tools=[_read_file_tool(workspace)],
    )
    run_config = RunConfig(tracing_disabled=True)
    rss_before_mb = peak_rss_mb()
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            Runner.run(
                agent.clone(), f"bench session {n}", max_turns=turns + 1, run_config=run_config
            )
            for n in range(sessions)
        )
    )
    run_s = time.perf_counter() - started
    wrong = [r.final_output for r in results if r.final_output != "done"]
    if wrong:
        raise RuntimeError(f"{len(wrong)} runs did not answer 'done', e.g. {wrong[0]!r}")
    latencies = clock.latencies_ms(sessions, turns)
    return {
        "engine": "openai-agents",
        "version": version("openai-agents"),
        "sessions": sessions,
        "turns": turns,
        "durable": False,
        "run_s": run_s,
        "turns_per_s": sessions * turns / run_s,
        "p50_turn_ms": percentile(latencies, 0.50),
        "p99_turn_ms": percentile(latencies, 0.99),
        "mean_turn_ms": statistics.fmean(latencies),
        "peak_rss_before_run_mb": rss_before_mb,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_agents_sdk_sessions(sessions: int = 1000, turns: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agents-sdk-sessions-") as tmp:
        workspace = Path(tmp)
        (workspace / NOTES).write_text(NOTES_TEXT, encoding="utf-8")
        return asyncio.run(_run(workspace, sessions, turns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="runs at once")
    parser.add_argument("--turns", type=int, default=10, help="tool turns per run")
    args = parser.parse_args()
    print(json.dumps(run_agents_sdk_sessions(args.sessions, args.turns), indent=2))


if __name__ == "__main__":
    main()
