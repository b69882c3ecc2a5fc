"""The MCP server mounted in `keel serve` at /mcp, driven by the official MCP SDK's own
client over Streamable HTTP, with the session API's tokens."""

from __future__ import annotations

from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, TextContent

from keel_server import KeelServer


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_an_mcp_client_over_http_lists_tools_starts_a_session_and_reads_its_result(
    server: KeelServer,
) -> None:
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"start_session", "wait_for_session", "get_session", "cancel_session"} <= tools

        started = data(await client.call_tool("start_session", {"goal": "Add a flag"}))
        session_id = started["sessionId"]
        progress: list[float] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(done)

        finished = data(
            await client.call_tool(
                "wait_for_session",
                {"session_id": session_id, "timeout_s": 60},
                progress_callback=on_progress,
            )
        )
        assert finished["status"] == "done"
        assert finished["finalAnswer"]
        assert progress
        assert progress == sorted(progress)

    # The session is the token's user's, and the session API shows the same record.
    async with httpx.AsyncClient() as api:
        record = (await api.get(f"{server.url}/v1/sessions/{session_id}", headers=headers)).json()
    assert record["userId"] == "local"
    assert record["status"] == "done"
    # The API's rules hold: the session worked in the server's workspace root.
    assert record["config"]["workspace"] == str(server.workspace_root.resolve())


async def test_an_mcp_session_over_http_may_not_work_outside_the_workspace_root(
    server: KeelServer,
) -> None:
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        refused = await client.call_tool("start_session", {"goal": "Look", "workspace": "/etc"})
        assert refused.is_error
        (content,) = refused.content
        assert isinstance(content, TextContent)
        assert "workspace root" in content.text


def test_the_mcp_endpoint_refuses_a_request_without_a_valid_token(server: KeelServer) -> None:
    for headers in ({}, {"Authorization": "Bearer keel_not-a-token"}):
        response = httpx.post(
            f"{server.url}/mcp",
            headers={**headers, "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
