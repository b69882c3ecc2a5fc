"""MCP servers as Keel tools: `McpToolset` connects to the servers an agent lists (a stdio
command or a Streamable HTTP URL) through the official `mcp` SDK client, and exposes each
server tool as an `McpTool` named `mcp__<server>__<tool>`.

Each connection lives in a background task of its own, which enters and leaves the SDK's
transport and session. The SDK's transports run under task groups: a transport that fails
mid-session (a server that went away) cancels the task that entered it. Owning that task here
means such a failure ends the connection, and the calls in flight become `ToolError`s,
instead of cancelling the agent that happened to enter the toolset.

This module never validates arguments beyond the schema's `required` keys (the server owns
its schema) and never retries a call: a failed call is the model's to see.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from types import TracebackType
from typing import Self, TextIO, cast

import anyio
import httpx2
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp import types as mcp_types
from mcp.client.streamable_http import streamable_http_client

from keel.errors import ConfigError, KeelError
from keel.tools.base import Tool, ToolContext, ToolError
from keel.types import JsonObject, McpServer

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 30.0
MAX_TOOL_NAME = 64
"""The longest tool name the model providers accept."""
_HTTP_READ_TIMEOUT = 300.0
"""Streamable HTTP holds response streams open; the call timeout bounds each call anyway."""
_MAX_TOOL_PAGES = 100
_STDERR_TAIL = 1000
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


class McpConnectError(KeelError):
    """An MCP server could not be started, reached or initialised; `server` names it."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(message)
        self.server = server


class McpToolset:
    """The tools of a list of MCP servers, connected while the toolset is entered.

    On enter every server is connected concurrently; if one fails, the others are closed and
    `McpConnectError` names the first failure. On exit every session and transport is closed
    (a stdio server is asked to exit, then killed) and `tools` is emptied.
    """

    def __init__(
        self,
        servers: Sequence[McpServer],
        *,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        names = [server.name for server in servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"MCP server names must be unique; repeated: {', '.join(duplicates)}")
        self.servers = list(servers)
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.tools: list[Tool] = []
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this McpToolset is already entered")
        stack = self._stack = AsyncExitStack()
        connections = [_Connection(server, self.connect_timeout) for server in self.servers]
        try:
            for connection in connections:
                connection.start()
                stack.push_async_callback(connection.close)
            try:
                async with asyncio.TaskGroup() as group:
                    for connection in connections:
                        group.create_task(connection.wait_ready())
            except ExceptionGroup as failures:
                raise failures.exceptions[0] from None
            taken: set[str] = set()
            for connection in connections:
                for listed in connection.listed_tools:
                    tool = McpTool(connection, listed, taken=taken, call_timeout=self.call_timeout)
                    taken.add(tool.name)
                    self.tools.append(tool)
        except BaseException:
            self._stack = None
            self.tools = []
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self.tools = []
        if stack is not None:
            await stack.aclose()


class McpTool(Tool):
    """One tool of a connected MCP server; `mcp_name` is its name on the server."""

    scopes = ("mcp:call",)

    def __init__(
        self,
        connection: _Connection,
        listed: mcp_types.Tool,
        *,
        taken: set[str] | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self.server = connection.config.name
        self.mcp_name = listed.name
        self.name = keel_tool_name(self.server, listed.name, taken or set())
        self.description = (
            listed.description
            or listed.title
            or f"The tool '{listed.name}' of the MCP server '{self.server}'."
        )
        self.parameters = dict(listed.input_schema)
        hints = listed.annotations
        self.read_only = bool(hints and hints.read_only_hint)
        # A tool that changes nothing is safe to run again; the spec reads the idempotent hint
        # only for tools that are not read-only.
        self.idempotent = self.read_only or bool(hints and hints.idempotent_hint)
        self.call_timeout = call_timeout
        self._connection = connection

    def validate(self, arguments: JsonObject) -> JsonObject:
        if not isinstance(arguments, dict):
            raise ToolError(f"invalid arguments for {self.name}: expected a JSON object")
        required = self.parameters.get("required")
        if isinstance(required, list):
            missing = [key for key in required if isinstance(key, str) and key not in arguments]
            if missing:
                noun = "argument" if len(missing) == 1 else "arguments"
                names = ", ".join(f"'{key}'" for key in missing)
                raise ToolError(
                    f"invalid arguments for {self.name}: missing required {noun} {names}"
                )
        return arguments

    async def run(self, arguments: JsonObject, context: ToolContext) -> str:
        result = await self._connection.call(self.mcp_name, arguments, self.call_timeout)
        text = render_result(result)
        if result.is_error:
            raise ToolError(text or f"the MCP tool '{self.mcp_name}' failed without a message")
        return text


def keel_tool_name(server: str, tool: str, taken: set[str]) -> str:
    """`mcp__<server>__<tool>` with the characters providers reject replaced by `_`; a name
    that is too long or already taken is shortened and given a hash of the original."""
    name = f"mcp__{server}__{_UNSAFE_NAME_CHARACTERS.sub('_', tool)}"
    if len(name) > MAX_TOOL_NAME or name in taken:
        digest = hashlib.sha256(tool.encode()).hexdigest()[:8]
        name = f"{name[: MAX_TOOL_NAME - len(digest) - 1]}_{digest}"
    return name


def render_result(result: mcp_types.CallToolResult) -> str:
    """The text blocks of a call's result, other blocks described in one line each; with no
    text at all, the structured content as compact JSON."""
    parts = [_render_block(block) for block in result.content]
    has_text = any(isinstance(block, mcp_types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        parts.append(
            json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)
        )
    return "\n".join(parts)


def _render_block(block: mcp_types.ContentBlock) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {_base64_size(block.data)} bytes]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link: {block.uri}]"
    resource = block.resource
    if isinstance(resource, mcp_types.TextResourceContents):
        return f"[resource: {resource.uri}]\n{resource.text}"
    kind = resource.mime_type or "binary"
    return f"[resource: {resource.uri}, {kind}, {_base64_size(resource.blob)} bytes]"


def _base64_size(data: str) -> int:
    data = data.strip()
    return len(data) * 3 // 4 - (len(data) - len(data.rstrip("=")))


class _Connection:
    """One server's client session, opened and closed by a background task of its own."""

    def __init__(self, config: McpServer, connect_timeout: float) -> None:
        self.config = config
        self.connect_timeout = connect_timeout
        self.listed_tools: list[mcp_types.Tool] = []
        self._session: ClientSession | None = None
        self._failure: str | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._connecting = anyio.CancelScope()
        """Cancelled to abandon a connection still being opened; a ready one stops on `_stop`."""
        self._task: asyncio.Task[None] | None = None

    @property
    def target(self) -> str:
        return self.config.url or f"command '{self.config.command}'"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"keel-mcp:{self.config.name}")

    async def wait_ready(self) -> None:
        await self._ready.wait()
        if self._session is None:
            reason = self._failure or "it closed before it was ready"
            raise McpConnectError(
                self.config.name,
                f"cannot connect to the MCP server '{self.config.name}' ({self.target}): {reason}",
            )

    async def close(self) -> None:
        if not self._ready.is_set():
            self._connecting.cancel()
        self._stop.set()
        if self._task is not None:
            await self._task

    async def call(
        self, tool: str, arguments: JsonObject, timeout_s: float
    ) -> mcp_types.CallToolResult:
        session = self._session
        server = f"the MCP server '{self.config.name}'"
        if session is None:
            why = f" ({self._failure})" if self._failure else ""
            raise ToolError(f"{server} is not connected{why}; the tool '{tool}' did not run")
        try:
            return await session.call_tool(tool, arguments, read_timeout_seconds=timeout_s)
        except MCPError as error:
            if error.code == mcp_types.REQUEST_TIMEOUT:
                raise ToolError(
                    f"{server} did not answer '{tool}' within {timeout_s:g} s"
                ) from None
            if error.code == mcp_types.CONNECTION_CLOSED:
                why = f" ({self._failure})" if self._failure else ""
                raise ToolError(
                    f"{server} closed the connection during '{tool}'{why}; it may have crashed"
                ) from None
            raise ToolError(f"{server} rejected the call to '{tool}': {error.message}") from None
        except Exception as error:
            raise ToolError(f"{server} failed during '{tool}': {_describe(error)}") from None

    async def _run(self) -> None:
        with ExitStack() as files:
            errlog = None
            if self.config.command is not None:
                errlog = cast(
                    TextIO,
                    files.enter_context(
                        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
                    ),
                )
            try:
                with self._connecting:
                    async with AsyncExitStack() as stack:
                        session = await self._open(stack, errlog)
                        await session.initialize()
                        self.listed_tools = await _list_tools(session)
                        self._session = session
                        self._ready.set()
                        await self._stop.wait()
                        self._session = None
            except Exception as error:
                self._failure = self._explain(error, errlog)
                if self._ready.is_set():
                    logger.warning("MCP server '%s': %s", self.config.name, self._failure)
            finally:
                self._session = None
                self._ready.set()

    async def _open(self, stack: AsyncExitStack, errlog: TextIO | None) -> ClientSession:
        config = self.config
        if config.command is not None:
            assert errlog is not None
            parameters = StdioServerParameters(
                command=config.command, args=config.args, env=config.env or None
            )
            streams = await stack.enter_async_context(stdio_client(parameters, errlog=errlog))
        else:
            assert config.url is not None
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=config.headers,
                    timeout=httpx2.Timeout(self.connect_timeout, read=_HTTP_READ_TIMEOUT),
                )
            )
            streams = await stack.enter_async_context(
                streamable_http_client(config.url, http_client=http)
            )
        read_stream, write_stream = streams
        return await stack.enter_async_context(
            ClientSession(read_stream, write_stream, read_timeout_seconds=self.connect_timeout)
        )

    def _explain(self, error: BaseException, errlog: TextIO | None) -> str:
        """Why the connection failed, in words that point at the fix."""
        cause = _first_leaf(error)
        command = self.config.command
        if isinstance(cause, FileNotFoundError) and command is not None:
            reason = f"the command '{command}' was not found; check 'command' or install it"
        elif isinstance(cause, PermissionError) and command is not None:
            reason = f"the command '{command}' is not executable"
        elif isinstance(cause, httpx2.ConnectError):
            reason = f"the connection to {self.config.url} failed ({cause}); is the server up?"
        elif isinstance(cause, MCPError) and cause.code == mcp_types.REQUEST_TIMEOUT:
            reason = f"no answer within {self.connect_timeout:g} s"
        elif isinstance(cause, MCPError) and cause.code == mcp_types.CONNECTION_CLOSED:
            reason = "the server closed the connection"
        elif isinstance(cause, MCPError) and cause.code == mcp_types.METHOD_NOT_FOUND:
            reason = f"{self.config.url} is not an MCP endpoint ({cause.message}); check the path"
        elif isinstance(cause, MCPError):
            reason = f"the server answered with an error: {cause.message}"
        else:
            reason = _describe(cause)
        tail = _read_tail(errlog)
        return f"{reason}; its stderr ended with: {tail}" if tail else reason


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _first_leaf(error: BaseException) -> BaseException:
    """The first exception inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    error = _first_leaf(error)
    detail = str(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _read_tail(errlog: TextIO | None) -> str:
    if errlog is None:
        return ""
    errlog.seek(0)
    text = errlog.read()
    return " ".join(text[-_STDERR_TAIL:].split())
