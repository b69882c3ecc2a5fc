"""Following a session's event stream across dropped connections: none missed, none twice.

`EventCursor` is the state both clients share: the last sequence number seen (sent back as
`Last-Event-ID` on every reconnection), the server's `retry:` delay, the reconnections
tried in a row. The clients own the I/O and the sleeping; this module does neither.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from keel.client._config import STREAM_READ_TIMEOUT_S, ClientConfig
from keel.client._endpoints import session_path
from keel.client._sse import SseDecoder
from keel.client.errors import (
    SESSION_ERRORS,
    ApiError,
    ServerUnavailable,
    error_for,
    unreachable,
)
from keel.events import kinds
from keel.types import TraceEvent

CLOSED_EARLY = "the server closed the stream before the session ended"
RETRYABLE_STATUS = frozenset({502, 503, 504})
"""A server restarting behind a proxy, or still starting: try again."""


class EventCursor:
    """Where a stream of one session's events is, over as many connections as it takes."""

    def __init__(self, config: ClientConfig, session_id: str, after: int) -> None:
        self.session_id = session_id
        self.after = after
        """The last sequence number delivered; the stream goes on after it."""
        self.finished = False
        """The session's final event was delivered: the stream is over."""
        self._config = config
        self._decoder = SseDecoder()
        self._retry_s: float | None = None
        self._failures = 0
        self._connected = False
        self.path = session_path(session_id, "/events")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self._config.timeout_s, read=STREAM_READ_TIMEOUT_S)

    def headers(self) -> dict[str, str]:
        """The headers of the next connection, which starts a fresh decoder."""
        self._decoder = SseDecoder()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.after:
            headers["Last-Event-ID"] = str(self.after)
        return headers

    def opened(self, response: httpx.Response) -> str | None:
        """None if `response` is the stream; the reason to retry if the server is briefly
        away; raises the error a refusal stands for (its body must have been read)."""
        self._connected = True
        if response.status_code in RETRYABLE_STATUS:
            return f"the server answered {response.status_code}"
        if response.is_error:
            raise error_for(response, SESSION_ERRORS, has_token=self._config.token is not None)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            raise ApiError(
                response.status_code,
                f"{self._config.url}{self.path} did not answer with an event stream "
                f"({response.headers.get('content-type')}): is KEEL_URL a Keel server?",
            )
        return None

    def feed(self, line: str) -> TraceEvent | None:
        """The event `line` completes, unless it was delivered already."""
        message = self._decoder.feed(line)
        if self._decoder.retry_ms is not None:
            self._retry_s = self._decoder.retry_ms / 1000
        if message is None:
            return None
        try:
            event = TraceEvent.model_validate_json(message.data)
        except ValidationError as error:
            raise ApiError(
                200,
                f"event {message.id or '?'} of session {self.session_id} is not a TraceEvent "
                f"as this client knows it: {str(error).splitlines()[0]}",
            ) from None
        if event.seq <= self.after:
            return None
        self.after = event.seq
        self._failures = 0
        self.finished = event.type in kinds.SESSION_FINAL
        return event

    def dropped(self, reason: str | httpx.TransportError) -> float:
        """The seconds to wait before reconnecting; raises when no more tries are left, or
        when the very first connection found no server (nothing to resume)."""
        if isinstance(reason, httpx.TransportError):
            if not self._connected:
                raise unreachable(self._config.url, reason)
            reason = str(reason) or type(reason).__name__
        self._failures += 1
        attempts = self._config.reconnect.attempts
        if self._failures > attempts:
            raise ServerUnavailable(
                f"the event stream of session {self.session_id} from {self._config.url} was "
                f"cut and {attempts} reconnections failed ({reason}); the session may still "
                f"run: follow it again from event {self.after}"
            )
        return self._config.reconnect.delay_s(self._failures, self._retry_s)
