"""A real HTTP/1.1 server on 127.0.0.1 that speaks the OpenAI Chat Completions and the
Anthropic Messages wire protocols, for the provider tests.

The official SDKs talk to it over TCP as they would to the real APIs; nothing is patched.
A test queues the replies it wants (`WireServer.reply`) and afterwards reads what the SDK
sent (`WireServer.requests`). The server runs on the test's own event loop, so there is no
thread to leak, and it closes every connection when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a JSON body, or a stream of server-sent events. With `drop`,
    the server closes the connection instead of answering, or, when there are events,
    right after them without ending the stream. `stall_s` delays the answer."""

    status: int = 200
    body: Json | None = None
    events: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False
    stall_s: float = 0.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: Json


NO_REPLY_LEFT = Reply(status=500, body={"error": {"message": "the test scripted no more replies"}})


class WireServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.url = ""
        self._replies: deque[Reply] = deque()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    def reply(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    async def __aenter__(self) -> WireServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for connection in self._connections:
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                reply = self._replies.popleft() if self._replies else NO_REPLY_LEFT
                await _write_reply(writer, reply)
                if reply.drop:
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._connections.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "transfer-encoding" not in headers, "this server reads Content-Length bodies only"
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, headers, json.loads(body) if body else {})


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    await asyncio.sleep(reply.stall_s)
    if reply.drop and not reply.events:
        return
    reason = "Overloaded" if reply.status == 529 else HTTPStatus(reply.status).phrase
    if reply.events:
        headers = {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
        payload = b""
    else:
        payload = json.dumps(reply.body or {}).encode()
        headers = {"content-type": "application/json", "content-length": str(len(payload))}
    head = [f"HTTP/1.1 {reply.status} {reason}"]
    head += [f"{name}: {value}" for name, value in {**headers, **reply.headers}.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()
    for event in reply.events:
        data = event.encode()
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()
    if reply.events and not reply.drop:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def sse(data: Json | str, *, event: str | None = None) -> str:
    """One server-sent event frame."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


@dataclass(frozen=True)
class StreamedCall:
    """A tool call as a server streams it: the arguments' JSON text cut into pieces."""

    id: str
    name: str
    pieces: Sequence[str]


# -- OpenAI Chat Completions: POST /v1/chat/completions ------------------------------------


def openai_chunk(
    delta: Json | None = None, *, finish_reason: str | None = None, usage: Json | None = None
) -> str:
    """One `chat.completion.chunk`; without a delta it has no choices (the usage chunk)."""
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    )
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-test",
        "choices": choices,
        "usage": usage,
    }
    return sse(chunk)


def openai_stream(*chunks: str, usage: tuple[int, int] = (12, 5)) -> Reply:
    """The chunks, then the usage chunk that `include_usage` asks for, then `[DONE]`."""
    prompt, completion = usage
    totals = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": sum(usage)}
    return Reply(events=[*chunks, openai_chunk(usage=totals), sse("[DONE]")])


def openai_reply(
    *text: str, calls: Sequence[StreamedCall] = (), usage: tuple[int, int] = (12, 5)
) -> Reply:
    chunks = [openai_chunk({"role": "assistant", "content": ""})]
    chunks += [openai_chunk({"content": piece}) for piece in text]
    for index, call in enumerate(calls):
        opening = {"index": index, "id": call.id, "type": "function"}
        opening["function"] = {"name": call.name, "arguments": ""}
        chunks.append(openai_chunk({"tool_calls": [opening]}))
        for piece in call.pieces:
            argument = {"index": index, "function": {"arguments": piece}}
            chunks.append(openai_chunk({"tool_calls": [argument]}))
    chunks.append(openai_chunk({}, finish_reason="tool_calls" if calls else "stop"))
    return openai_stream(*chunks, usage=usage)


def openai_error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": "test_error", "param": None, "code": None}}
    return Reply(status=status, body=body, headers=headers or {})


# -- Anthropic Messages: POST /v1/messages --------------------------------------------------


def anthropic_event(kind: str, **data: Any) -> str:
    return sse({"type": kind, **data}, event=kind)


def anthropic_reply(
    *text: str,
    calls: Sequence[StreamedCall] = (),
    usage: tuple[int, int] = (20, 7),
    cached: int = 0,
) -> Reply:
    """A text block streamed in the given pieces (when there are any), then one `tool_use`
    block per call, its input streamed as `input_json_delta` pieces. `cached` prompt tokens
    are reported apart from the other input tokens, as the API does."""
    input_tokens, output_tokens = usage
    message: Json = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_read_input_tokens": cached,
            "output_tokens": 1,
        },
    }
    events = [anthropic_event("message_start", message=message), anthropic_event("ping")]
    blocks: list[tuple[Json, str, Sequence[str]]] = []
    if text:
        blocks.append(({"type": "text", "text": ""}, "text_delta", text))
    for call in calls:
        opening = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        blocks.append((opening, "input_json_delta", call.pieces))
    for index, (opening, kind, pieces) in enumerate(blocks):
        events.append(anthropic_event("content_block_start", index=index, content_block=opening))
        field_name = "text" if kind == "text_delta" else "partial_json"
        for piece in pieces:
            delta = {"type": kind, field_name: piece}
            events.append(anthropic_event("content_block_delta", index=index, delta=delta))
        events.append(anthropic_event("content_block_stop", index=index))
    stop = "tool_use" if calls else "end_turn"
    events.append(
        anthropic_event(
            "message_delta",
            delta={"stop_reason": stop, "stop_sequence": None},
            usage={"output_tokens": output_tokens},
        )
    )
    events.append(anthropic_event("message_stop"))
    return Reply(events=events)


def anthropic_error_body(kind: str, message: str) -> Json:
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error(
    status: int, kind: str, message: str, *, headers: Mapping[str, str] | None = None
) -> Reply:
    return Reply(status=status, body=anthropic_error_body(kind, message), headers=headers or {})
