"""What the HTTP providers share: how a provider's model is made from the settings, which
statuses a retry may fix, how long a server asks to wait, how a refusal is explained, and
how streamed tool-call argument text becomes arguments."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar, Self

from keel.models.base import Model
from keel.models.settings import ModelSettings, api_key, base_url
from keel.types import JsonObject

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""The 4xx statuses a retry may fix (the SDKs' own retry rule); every 5xx is retryable too."""


REFUSAL_HINTS = {401: "; check the API key", 404: "; check the model name and the base URL"}


class HttpModel(Model):
    """A model behind a provider's HTTP API: its name, address, key and timeout."""

    provider: ClassVar[str]
    default_base_url: ClassVar[str]
    key_variables: ClassVar[tuple[str, ...]]
    base_url_variables: ClassVar[tuple[str, ...]]

    def __init__(self, name: str, *, api_key: str, base_url: str | None, timeout_s: float) -> None:
        self.name = name
        self.base_url = base_url or self.default_base_url
        self._api_key = api_key
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(cls, name: str, settings: ModelSettings) -> Self:
        """The model, with its key and address from the session's settings or the
        environment; a missing key is a `ModelConfigError` naming the variables."""
        return cls(
            name,
            api_key=api_key(settings, cls.provider, cls.key_variables),
            base_url=base_url(settings, cls.provider, cls.base_url_variables),
            timeout_s=settings.timeout_s,
        )

    @property
    def _where(self) -> str:
        return f"{self.provider} model '{self.name}' at {self.base_url}"

    def _refused(self, status: int, reason: str) -> str:
        hint = REFUSAL_HINTS.get(status, "")
        return f"{self._where} refused the request (HTTP {status}): {reason}{hint}"


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
