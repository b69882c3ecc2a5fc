"""`keel mcp`, driven by the official MCP SDK's own client over stdio: a real subprocess
with its own KEEL_HOME, the built-in scripted team, the demo's repository."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent, TextResourceContents

from keel.cli.demo import DEMO_GOAL

TOOLS = {
    "start_session",
    "get_session",
    "get_task_tree",
    "get_events",
    "answer_approval",
    "cancel_session",
    "wait_for_session",
}


@asynccontextmanager
async def keel_mcp(home: Path, log: Path) -> AsyncIterator[ClientSession]:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "keel.cli", "mcp"], env={"KEEL_HOME": str(home)}
    )
    with log.open("w") as errlog:
        async with (
            stdio_client(server, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    (content,) = result.content
    assert isinstance(content, TextContent)
    return content.text


async def pending_approval(client: ClientSession, session_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            session = data(await client.call_tool("get_session", {"session_id": session_id}))
            if session["pendingApprovals"]:
                approval: dict[str, Any] = session["pendingApprovals"][0]
                return approval
            await asyncio.sleep(0.05)


async def test_a_client_starts_a_session_answers_its_approval_and_reads_the_result(
    home: Path, tmp_path: Path, project: Callable[..., Path]
) -> None:
    repo = project(ask=True)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with keel_mcp(home, tmp_path / "mcp.log") as client:
        listed = await client.list_tools()
        assert {tool.name for tool in listed.tools} >= TOOLS

        started = data(
            await client.call_tool("start_session", {"goal": DEMO_GOAL, "workspace": str(repo)})
        )
        session_id = started["sessionId"]
        assert started["status"] == "pending"  # it returned at once; the run goes on

        approval = await pending_approval(client, session_id)
        assert approval["tool"] == "run_command"
        assert approval["agent"] == "tester"
        answered = await client.call_tool(
            "answer_approval",
            {"approval_id": approval["approvalId"], "allow": True, "remember": True},
        )
        assert data(answered)["status"] == "allowed"

        finished = data(
            await client.call_tool(
                "wait_for_session",
                {"session_id": session_id, "timeout_s": 60},
                progress_callback=on_progress,
            )
        )
        assert finished["status"] == "done"
        assert "The tests pass" in finished["finalAnswer"]
        assert finished["pendingApprovals"] == []

        assert progress, "the client received no progress notifications"
        done = [p[0] for p in progress]
        assert done == sorted(set(done)), "progress must increase"
        assert progress[-1][0] == progress[-1][1]
        assert any("Fix the bug" in (p[2] or "") for p in progress)

        tree = data(await client.call_tool("get_task_tree", {"session_id": session_id}))
        (root,) = tree["tasks"]
        assert root["goal"] == DEMO_GOAL
        assert root["status"] == "done"
        assert [child["agent"] for child in root["children"]] == [
            "tester",
            "coder",
            "tester",
            "reviewer",
        ]

        page = data(
            await client.call_tool("get_events", {"session_id": session_id, "after": 0, "limit": 3})
        )
        assert [e["seq"] for e in page["events"]] == [1, 2, 3]
        assert page["events"][0]["type"] == "session.created"
        assert page["nextAfter"] == 3

        (patch,) = [a for a in finished["artifacts"] if a["name"] == "final.patch"]
        read = await client.read_resource(patch["uri"])
        (content,) = read.contents
        assert isinstance(content, TextResourceContents)
        assert "+    return a + b" in content.text

        tasks = await client.read_resource(f"keel://sessions/{session_id}/tasks")
        (content,) = tasks.contents
        assert isinstance(content, TextResourceContents)
        assert json.loads(content.text)["tasks"][0]["taskId"] == root["taskId"]

        listing = await client.read_resource("keel://sessions")
        (content,) = listing.contents
        assert isinstance(content, TextResourceContents)
        assert session_id in [s["sessionId"] for s in json.loads(content.text)["sessions"]]


async def test_bad_input_is_a_tool_error_with_a_message_and_a_session_can_be_cancelled(
    home: Path, tmp_path: Path, project: Callable[..., Path]
) -> None:
    repo = project(ask=True)
    async with keel_mcp(home, tmp_path / "mcp.log") as client:
        unknown = await client.call_tool("get_session", {"session_id": "s_nope"})
        assert "no session 's_nope'" in error_text(unknown)
        empty = await client.call_tool("start_session", {"goal": "  "})
        assert "a session needs a goal" in error_text(empty)
        stranger = await client.call_tool("start_session", {"goal": "Fix it", "agents": ["ghost"]})
        assert "no agent named 'ghost'; known agents: coder, planner" in error_text(stranger)
        with pytest.raises(MCPError, match="no session 's_nope'"):
            await client.read_resource("keel://sessions/s_nope/tasks")

        started = data(
            await client.call_tool("start_session", {"goal": DEMO_GOAL, "workspace": str(repo)})
        )
        session_id = started["sessionId"]
        await pending_approval(client, session_id)  # it waits for a person: cancel it
        data(await client.call_tool("cancel_session", {"session_id": session_id}))
        ended = data(
            await client.call_tool("wait_for_session", {"session_id": session_id, "timeout_s": 60})
        )
        assert ended["status"] == "cancelled"

    assert "Traceback" not in (tmp_path / "mcp.log").read_text()
