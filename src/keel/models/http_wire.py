"""What the HTTP providers share: which statuses a retry may fix, how long a server asks
to wait, and how streamed tool-call argument text becomes arguments."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from datetime import UTC, datetime

from keel.types import JsonObject

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""The 4xx statuses a retry may fix (the SDKs' own retry rule); every 5xx is retryable too."""


def parse_arguments(text: str) -> tuple[JsonObject, str | None]:
    """A call's arguments and, when the text is not a JSON object, the text itself. No text
    at all is an empty object: that is how a call without arguments streams."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return {}, text
    if not isinstance(value, dict):
        return {}, text
    return value, None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: `retry-after-ms`, else `retry-after` as seconds or
    as an HTTP date."""
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
