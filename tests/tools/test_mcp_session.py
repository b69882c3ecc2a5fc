"""An agent that lists an MCP server gets its tools in a session, named
`mcp__<server>__<tool>`, and calls them through the official SDK client."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from keel import Keel
from keel.events import kinds
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import SessionStatus

SERVER = Path(__file__).parent / "mcp_server.py"


async def test_a_session_agent_calls_a_tool_of_its_mcp_server(keel: Keel) -> None:
    offered: list[str] = []

    def script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        if not any(m.role == "tool" for m in messages):
            offered.extend(t.name for t in tools)
            call = ToolCall(id="c1", name="mcp__calc__add", arguments={"a": 2, "b": 40})
            return Message(role="assistant", tool_calls=[call])
        return f"The server says {messages[-1].content}."

    register_script("mcp-user", script)
    session = await keel.create_session(
        "Add 2 and 40",
        [
            {
                "name": "adder",
                "role": "worker",
                "model": "scripted:mcp-user",
                "permissions": [{"level": "L1", "scope": "mcp:call"}],
                "mcpServers": [{"name": "calc", "command": sys.executable, "args": [str(SERVER)]}],
            }
        ],
    )
    finished = await keel.run(session.id)
    events = await keel.events.read(session.id)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "The server says 42."
    assert "mcp__calc__add" in offered
    assert "mcp__calc__shout" in offered
    (result,) = [e.payload for e in events if e.type == kinds.TOOL_RESULT]
    assert result["tool"] == "mcp__calc__add"
    assert result["ok"] is True
