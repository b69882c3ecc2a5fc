"""Keel's MCP server over Streamable HTTP, mounted in `keel serve` at `/mcp`.

The same tools and resources as `keel mcp`, for the user of the request's API token (the
session API's tokens: `Authorization: Bearer <token>`). Sessions started here are queued
for the server's workers, like sessions created through the API, so a run outlives the MCP
connection that started it.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from keel.errors import ConfigError
from keel.gateway.mcp_server import build_mcp_server
from keel.server.problems import ApiProblem
from keel.server.routes.sessions import api_session_config
from keel.server.state import ServerState
from keel.server.tokens import Caller, verify_token
from keel.types import JsonObject

PATH = "/mcp"

# Set by `McpHttp` for every request; the SDK carries it into the tool's task.
_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("keel_mcp_caller")


def _current_user() -> str:
    return _caller.get().user_id


class McpHttp:
    """An ASGI app: checks the Bearer token, then hands the request to the MCP app."""

    def __init__(self, state: ServerState, *, host: str = "127.0.0.1") -> None:
        self._state = state
        self._keel = keel = state.keel
        server = build_mcp_server(
            keel,
            start_run=self._start_run,
            user_id=_current_user,
            configure=self._configure,
        )
        self._server = server
        self._app: ASGIApp = server.streamable_http_app(streamable_http_path=PATH, host=host)

    def _configure(self, config: JsonObject) -> JsonObject:
        """The session API's rules: workspaces under the server's root, its policy."""
        try:
            return api_session_config(self._state, _caller.get(), config)
        except ApiProblem as problem:
            raise ConfigError(problem.detail) from None

    async def _start_run(self, session_id: str) -> None:
        await self._keel.submit(session_id)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The MCP session manager's lifetime: the server's."""
        async with self._server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"authorization", b"").decode()
        scheme, _, token = header.partition(" ")
        caller = None
        if scheme.lower() == "bearer" and token.strip():
            caller = await verify_token(self._keel.engine, token.strip())
        if caller is None:
            body = (
                b'{"type":"https://keel.dev/problems/401","title":"Unauthorized",'
                b'"status":401,"detail":"the MCP endpoint needs an API token: send '
                b"'Authorization: Bearer <token>'\"}"
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"www-authenticate", b'Bearer realm="keel"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        reset = _caller.set(caller)
        try:
            await self._app(scope, receive, send)
        finally:
            _caller.reset(reset)
