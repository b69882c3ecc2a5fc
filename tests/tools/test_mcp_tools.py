"""MCP servers' tools as an agent's tools: a real MCPServer (tests/tools/mcp_server.py),
reached over stdio as a subprocess and over Streamable HTTP from a uvicorn subprocess."""

from __future__ import annotations

import asyncio
import copy
import functools
import gc
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from mcp import types as mcp_types

from keel.errors import ConfigError
from keel.tools.base import Tool, ToolContext, ToolError
from keel.tools.mcp import McpConnectError, McpTool, McpToolset, keel_tool_name, render_result
from keel.types import McpServer

module_loop = pytest.mark.asyncio(loop_scope="module")
"""For the tests that share the module's server connections, which live on the module's loop."""

SERVER_SCRIPT = Path(__file__).with_name("mcp_server.py")
TOKEN = "Bearer s3cret"
PIXEL_SIZE = 70
"""Bytes of the one-pixel PNG the server's `pixel` tool returns."""
SERVER_TOOLS = {"add", "shout", "fail", "lookup", "text_reverse", "pixel", "stats", "slow"}
SERVER_TOOLS |= {"whoami", "getenv"}
SILENT_SERVER = "import sys; sys.stdin.read()"
"""A stdio 'server' that never answers and exits when its stdin closes."""


def stdio_server(name: str = "demo", env: dict[str, str] | None = None) -> McpServer:
    return McpServer(name=name, command=sys.executable, args=[str(SERVER_SCRIPT)], env=env or {})


def context() -> ToolContext:
    return ToolContext(workspace=Path.cwd(), session_id="s1", task_id="t1", agent="coder")


def by_name(toolset: McpToolset) -> dict[str, Tool]:
    return {tool.name: tool for tool in toolset.tools}


async def call(tool: Tool, **arguments: object) -> str:
    return await tool.run(tool.validate(dict(arguments)), context())


def child_pids() -> set[int]:
    """The processes whose parent is this one (read from /proc)."""
    children: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return children


@contextmanager
def nothing_left_behind() -> Iterator[None]:
    """Fails if the block leaves a child process or an asyncio task behind, or garbage that
    warns when collected (pytest turns those warnings into errors)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to list child processes")
    children, tasks = child_pids(), asyncio.all_tasks()
    yield
    gc.collect()
    assert child_pids() <= children
    assert asyncio.all_tasks() - tasks <= {asyncio.current_task()}


class HttpServerProcess:
    """The test server over Streamable HTTP, in a subprocess started at once. Its socket
    listens before it prints the port, so `url` is usable as soon as it is read."""

    def __init__(self) -> None:
        command = [sys.executable, str(SERVER_SCRIPT), "--http"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    @functools.cached_property
    def url(self) -> str:
        assert self.process.stdout is not None
        return f"http://127.0.0.1:{int(self.process.stdout.readline())}/mcp"

    def stop(self) -> None:
        with self.process:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def http_server_process() -> Iterator[HttpServerProcess]:
    server = HttpServerProcess()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def http_server() -> Iterator[HttpServerProcess]:
    """Autouse, so that it boots while the first tests start the stdio server."""
    with http_server_process() as server:
        yield server


@pytest.fixture(scope="module")
def http_url(http_server: HttpServerProcess) -> str:
    return http_server.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stdio_tools() -> AsyncIterator[dict[str, Tool]]:
    async with McpToolset([stdio_server()]) as toolset:
        yield by_name(toolset)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http_tools(http_url: str) -> AsyncIterator[dict[str, Tool]]:
    server = McpServer(name="remote", url=http_url, headers={"Authorization": TOKEN})
    async with McpToolset([server]) as toolset:
        yield by_name(toolset)


@module_loop
async def test_the_servers_tools_are_listed_as_mcp__server__tool_with_their_schemas(
    stdio_tools: dict[str, Tool],
) -> None:
    assert set(stdio_tools) == {f"mcp__demo__{name}" for name in SERVER_TOOLS}
    add = stdio_tools["mcp__demo__add"]
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.spec().name == "mcp__demo__add"


@module_loop
async def test_calling_a_tool_returns_its_text(stdio_tools: dict[str, Tool]) -> None:
    assert await call(stdio_tools["mcp__demo__add"], a=2, b=3) == "5"
    assert await call(stdio_tools["mcp__demo__shout"], text="hello") == "HELLO!"


@module_loop
async def test_a_tool_name_with_other_characters_is_sanitised_and_called_by_its_own_name(
    stdio_tools: dict[str, Tool],
) -> None:
    tool = stdio_tools["mcp__demo__text_reverse"]
    assert isinstance(tool, McpTool)
    assert tool.mcp_name == "text.reverse"
    assert await call(tool, text="abc") == "cba"


@module_loop
async def test_annotations_decide_read_only_and_idempotent_and_every_tool_needs_mcp_call(
    stdio_tools: dict[str, Tool],
) -> None:
    lookup, add = stdio_tools["mcp__demo__lookup"], stdio_tools["mcp__demo__add"]
    assert (lookup.read_only, lookup.idempotent) == (True, True)
    assert (add.read_only, add.idempotent) == (False, False)
    assert {tool.scopes for tool in stdio_tools.values()} == {("mcp:call",)}


@module_loop
async def test_a_tool_that_fails_raises_tool_error_with_the_servers_message(
    stdio_tools: dict[str, Tool],
) -> None:
    with pytest.raises(ToolError, match="refused: out of coffee"):
        await call(stdio_tools["mcp__demo__fail"], reason="out of coffee")


@module_loop
async def test_a_missing_required_argument_is_a_tool_error_naming_it(
    stdio_tools: dict[str, Tool],
) -> None:
    add = stdio_tools["mcp__demo__add"]
    with pytest.raises(ToolError, match=r"mcp__demo__add: missing required argument 'b'"):
        add.validate({"a": 1})
    with pytest.raises(ToolError, match="expected a JSON object"):
        add.validate([1, 2])  # type: ignore[arg-type]


@module_loop
async def test_an_image_is_described_and_structured_content_without_text_is_compact_json(
    stdio_tools: dict[str, Tool],
) -> None:
    assert await call(stdio_tools["mcp__demo__pixel"]) == f"[image: image/png, {PIXEL_SIZE} bytes]"
    assert await call(stdio_tools["mcp__demo__stats"]) == '{"count":2,"names":["a","b"]}'


@module_loop
async def test_a_call_past_its_timeout_is_a_tool_error_and_the_server_stays_usable(
    stdio_tools: dict[str, Tool],
) -> None:
    slow = copy.copy(stdio_tools["mcp__demo__slow"])
    assert isinstance(slow, McpTool)
    slow.call_timeout = 0.2
    with pytest.raises(ToolError, match=r"'demo' did not answer 'slow' within 0.2 s"):
        await call(slow, seconds=30)
    assert await call(stdio_tools["mcp__demo__add"], a=1, b=1) == "2"


@module_loop
async def test_the_same_server_over_streamable_http_gets_the_configured_headers(
    http_tools: dict[str, Tool],
) -> None:
    assert set(http_tools) == {f"mcp__remote__{name}" for name in SERVER_TOOLS}
    assert await call(http_tools["mcp__remote__whoami"]) == TOKEN
    assert await call(http_tools["mcp__remote__add"], a=20, b=22) == "42"
    with pytest.raises(ToolError, match="refused: nope"):
        await call(http_tools["mcp__remote__fail"], reason="nope")


async def test_an_http_server_that_rejects_the_request_is_a_connect_error(http_url: str) -> None:
    server = McpServer(name="remote", url=http_url, headers={"Authorization": "Bearer wrong"})
    with nothing_left_behind(), pytest.raises(McpConnectError) as raised:
        async with McpToolset([server]):
            pass
    assert raised.value.server == "remote"
    assert "'remote'" in str(raised.value)
    assert "missing or wrong bearer token" in str(raised.value)


async def test_a_url_nobody_listens_on_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = McpServer(name="gone", url=f"http://127.0.0.1:{port}/mcp")
    with nothing_left_behind(), pytest.raises(McpConnectError, match=r"'gone'.*connection"):
        async with McpToolset([server]):
            pass


async def test_a_command_that_does_not_exist_is_a_connect_error_naming_the_server() -> None:
    server = McpServer(name="ghost", command="keel-no-such-mcp-server")
    with nothing_left_behind(), pytest.raises(McpConnectError) as raised:
        async with McpToolset([server]):
            pass
    assert raised.value.server == "ghost"
    assert "'ghost'" in str(raised.value)
    assert "command 'keel-no-such-mcp-server' was not found" in str(raised.value)


async def test_a_server_that_exits_at_start_is_a_connect_error_quoting_its_stderr() -> None:
    crash = "import sys; sys.exit('config file missing')"
    server = McpServer(name="crashy", command=sys.executable, args=["-c", crash])
    with nothing_left_behind(), pytest.raises(McpConnectError) as raised:
        async with McpToolset([server]):
            pass
    assert "'crashy'" in str(raised.value)
    assert "config file missing" in str(raised.value)


async def test_one_server_failing_closes_the_open_and_the_opening_ones(http_url: str) -> None:
    late_failure = "import sys, time; time.sleep(0.3); sys.exit('late failure')"
    servers = [
        McpServer(name="open", url=http_url, headers={"Authorization": TOKEN}),
        McpServer(
            name="silent", command=sys.executable, args=["-c", "import sys; sys.stdin.read()"]
        ),
        McpServer(name="late", command=sys.executable, args=["-c", late_failure]),
    ]
    with nothing_left_behind(), pytest.raises(McpConnectError, match=r"'late'.*late failure"):
        async with McpToolset(servers):
            pass


async def test_giving_up_while_connecting_leaves_nothing_behind() -> None:
    silent = McpServer(name="silent", command=sys.executable, args=["-c", SILENT_SERVER])
    with nothing_left_behind(), pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3), McpToolset([silent]):
            pass


async def test_closing_the_toolset_ends_its_server_process_and_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_TEST_SECRET", "do not leak")
    server = stdio_server("envy", env={"KEEL_TEST_GREETING": "hello"})
    with nothing_left_behind():
        async with McpToolset([server]) as toolset:
            getenv = by_name(toolset)["mcp__envy__getenv"]
            assert await call(getenv, name="KEEL_TEST_GREETING") == "hello"
            assert await call(getenv, name="KEEL_TEST_SECRET") == "(unset)"
            assert await call(getenv, name="PATH") == os.environ["PATH"]
        assert toolset.tools == []
    with pytest.raises(ToolError, match="'envy' is not connected"):
        await call(getenv, name="PATH")


async def test_a_server_that_dies_mid_session_turns_calls_into_tool_errors() -> None:
    with nothing_left_behind(), http_server_process() as http:
        server = McpServer(name="flaky", url=http.url, headers={"Authorization": TOKEN})
        async with McpToolset([server]) as toolset:
            add = by_name(toolset)["mcp__flaky__add"]
            assert await call(add, a=1, b=2) == "3"
            http.process.kill()
            http.process.wait(timeout=10)
            with pytest.raises(ToolError, match="the MCP server 'flaky'"):
                await call(add, a=1, b=2)


def test_server_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match="repeated: demo"):
        McpToolset([stdio_server(), stdio_server()])


def test_tool_names_that_are_too_long_or_taken_get_a_hash_of_the_original() -> None:
    assert keel_tool_name("fs", "read file", set()) == "mcp__fs__read_file"
    taken = {"mcp__fs__read_file"}
    other = keel_tool_name("fs", "read.file", taken)
    assert other.startswith("mcp__fs__read_file_")
    assert other not in taken
    long = keel_tool_name("fs", "x" * 80, set())
    assert len(long) == 64
    assert long.startswith("mcp__fs__xxx")
    assert long != keel_tool_name("fs", "x" * 81, set())


def test_every_kind_of_content_block_is_rendered() -> None:
    result = mcp_types.CallToolResult(
        content=[
            mcp_types.TextContent(text="hello"),
            mcp_types.AudioContent(data="AAAA", mime_type="audio/wav"),
            mcp_types.ResourceLink(uri="file:///a.txt", name="a.txt"),
            mcp_types.EmbeddedResource(
                resource=mcp_types.TextResourceContents(uri="file:///b.txt", text="bee")
            ),
            mcp_types.EmbeddedResource(
                resource=mcp_types.BlobResourceContents(uri="file:///c.bin", blob="AAE=")
            ),
        ],
        structured_content={"ignored": "because there is text"},
    )
    assert render_result(result).splitlines() == [
        "hello",
        "[audio: audio/wav, 3 bytes]",
        "[resource link: file:///a.txt]",
        "[resource: file:///b.txt]",
        "bee",
        "[resource: file:///c.bin, binary, 2 bytes]",
    ]
