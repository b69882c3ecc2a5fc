"""A Python client for Keel's session API (`keel serve`), sync and async.

    from keel.client import KeelClient
    with KeelClient("http://127.0.0.1:8420", token) as keel:
        session = keel.wait(keel.create_session("Fix the failing test").id)

Arguments win over the environment: `url` defaults to `KEEL_URL`, `token` to `KEEL_TOKEN`.
Answers are Keel's own models (`Session`, `Task`, `TraceEvent`, `Approval`, ...); failures
are Keel's own errors (`SessionNotFound`, `ValidationFailed`, ...) plus `AuthError` and
`ServerUnavailable` from `keel.client.errors`, with the server's message.
"""

from __future__ import annotations

from keel.client._config import TOKEN_VARIABLE, URL_VARIABLE, ClientConfig, Reconnect
from keel.client.async_client import AsyncKeelClient
from keel.client.errors import ApiError, AuthError, Conflict, ServerUnavailable
from keel.client.sync_client import KeelClient

__all__ = [
    "TOKEN_VARIABLE",
    "URL_VARIABLE",
    "ApiError",
    "AsyncKeelClient",
    "AuthError",
    "ClientConfig",
    "Conflict",
    "KeelClient",
    "Reconnect",
    "ServerUnavailable",
]
