"""Server-Sent Events, decoded line by line as the HTML spec's "event stream interpretation"
says: `event:`, multi-line `data:`, `id:` (kept across events), `retry:`, comments.

It knows nothing of Keel's events or of reconnecting; it turns lines into messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str
    data: str
    id: str
    """The last event id when this message was dispatched (the stream's, not only its own)."""


class SseDecoder:
    """Feed it the stream's lines (without their line endings); it answers each complete
    message once its blank line arrives."""

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry_ms: int | None = None
        """The reconnection delay the server asked for, if it did."""
        self.comments = 0
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        match name:
            case "event":
                self._event = value
            case "data":
                self._data.append(value)
            case "id":
                if "\0" not in value:
                    self.last_event_id = value
            case "retry":
                if value.isascii() and value.isdigit():
                    self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return SseMessage(event or "message", "\n".join(data), self.last_event_id)
