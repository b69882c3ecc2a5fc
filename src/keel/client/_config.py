"""Where the client finds its server and token.

Arguments win; what is not given comes from the environment: `KEEL_URL` (the server, e.g.
`http://127.0.0.1:8420`) and `KEEL_TOKEN` (an API token from `keel token create`). An
explicit `token=""` sends no token even when `KEEL_TOKEN` is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from keel.errors import ConfigError

URL_VARIABLE = "KEEL_URL"
TOKEN_VARIABLE = "KEEL_TOKEN"
TIMEOUT_S = 30.0
STREAM_READ_TIMEOUT_S = 60.0
"""Longer than the server's heartbeat (15 s): a stream this quiet has been cut."""


@dataclass(frozen=True)
class Reconnect:
    """How a dropped event stream is resumed: up to `attempts` tries in a row without a new
    event, each waiting the server's `retry:` (else `initial_delay_s`), doubled each time,
    at most `max_delay_s`."""

    attempts: int = 6
    initial_delay_s: float = 1.0
    max_delay_s: float = 10.0

    def delay_s(self, failures: int, server_retry_s: float | None) -> float:
        base = self.initial_delay_s if server_retry_s is None else server_retry_s
        return float(min(self.max_delay_s, base * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str | None
    timeout_s: float = TIMEOUT_S
    reconnect: Reconnect = Reconnect()

    @classmethod
    def resolve(
        cls,
        url: str | None,
        token: str | None,
        *,
        timeout_s: float = TIMEOUT_S,
        reconnect: Reconnect | None = None,
    ) -> ClientConfig:
        url = url or os.environ.get(URL_VARIABLE, "").strip()
        if not url:
            raise ConfigError(
                f"no Keel server to talk to: pass url=... or set {URL_VARIABLE} "
                "(e.g. http://127.0.0.1:8420, where `keel serve` listens)"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"'{url}' is not a server address: write http://HOST:PORT or https://HOST "
                f"(in url=... or {URL_VARIABLE})"
            )
        if token is None:
            token = os.environ.get(TOKEN_VARIABLE, "").strip()
        return cls(
            url=url.rstrip("/"),
            token=token or None,
            timeout_s=timeout_s,
            reconnect=reconnect or Reconnect(),
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}
