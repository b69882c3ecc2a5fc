"""A small MCP server for the MCP tool tests, built with the SDK's own MCPServer.

Run as a script: `python mcp_server.py` speaks MCP over stdio; `python mcp_server.py --http`
binds a free port on 127.0.0.1, prints it on one line, then serves Streamable HTTP at `/mcp`
to requests that carry `Authorization: Bearer s3cret` (others get a 401 JSON-RPC error).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
from typing import Any

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN = "Bearer s3cret"
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

server = MCPServer("keel-test", log_level="WARNING")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Upper-case a text and add an exclamation mark.")
def shout(text: str) -> str:
    return text.upper() + "!"


@server.tool(description="Always fails with the given reason.")
def fail(reason: str) -> str:
    raise ToolError(f"refused: {reason}")


@server.tool(
    description="Look a word up; never changes anything.",
    annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
)
def lookup(word: str) -> str:
    return f"{word}: a word"


@server.tool(name="text.reverse", description="Reverse a text.")
def reverse(text: str) -> str:
    return text[::-1]


@server.tool(description="A one-pixel PNG.")
def pixel() -> Image:
    return Image(data=PNG_BYTES, format="png")


@server.tool(description="Structured content only, no text.")
def stats() -> CallToolResult:
    return CallToolResult(content=[], structured_content={"count": 2, "names": ["a", "b"]})


@server.tool(description="Sleep, then answer.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@server.tool(description="The Authorization header this request arrived with.")
def whoami(ctx: Context) -> str:
    headers: Any = ctx.headers or {}
    return str(headers.get("authorization", "(none)"))


@server.tool(description="The value of an environment variable in the server process.")
def getenv(name: str) -> str:
    return os.environ.get(name, "(unset)")


def require_token(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and dict(scope["headers"]).get(b"authorization") != TOKEN.encode()
        ):
            error = {"code": -32600, "message": "missing or wrong bearer token"}
            body = {"jsonrpc": "2.0", "id": None, "error": error}
            await JSONResponse(body, status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def serve_http() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    # The socket already accepts connections, so the test may connect as soon as it reads this.
    print(sock.getsockname()[1], flush=True)
    app = require_token(server.streamable_http_app())
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true")
    if parser.parse_args().http:
        serve_http()
    else:
        server.run("stdio")
