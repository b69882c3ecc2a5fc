"""The session API's answers as Keel's own errors.

The server answers every failure with a problem document (RFC 9457); the client raises the
`KeelError` a caller of the local runtime would get for the same failure, with the server's
`detail` as its message: 404 a `NotFound` (`SessionNotFound` for a session), 409 an
`IllegalTransition` (`SessionNotResumable` for resume), 422 `ValidationFailed` with the
server's field list, 401/403 `AuthError`, 503 `ServerUnavailable`. What has no local twin
gets a class here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from keel.errors import (
    IllegalTransition,
    KeelError,
    NotFound,
    SessionNotFound,
    ValidationFailed,
)


class AuthError(KeelError):
    """401 or 403: the token is missing, unknown or revoked, or may not do this."""


class ServerUnavailable(KeelError):
    """Nothing answers at the server's address, the server says it cannot serve now (503),
    or a stream could not be resumed."""


class ApiError(KeelError):
    """Any other refusal or failure of the server; `status` is its HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class Conflict(IllegalTransition):
    """409: the server refused a change the record's state does not allow (deleting a
    running session, cancelling one that has ended)."""

    def __init__(self, detail: str) -> None:
        KeelError.__init__(self, detail)
        self.current = self.requested = ""


ErrorFactory = Callable[[str], KeelError]
"""Makes the error for one status of one endpoint from the server's detail."""

SESSION_ERRORS: Mapping[int, ErrorFactory] = {404: SessionNotFound}


def problem_detail(response: httpx.Response) -> tuple[str, list[tuple[str, str]]]:
    """The problem document's detail and its fields (for bad input), or what is known."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:200] or response.reason_phrase
        return f"the server answered {response.status_code}: {text}", []
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    fields = [
        (str(item.get("field", "")), str(item.get("message", "")))
        for item in body.get("errors") or []
        if isinstance(item, dict)
    ]
    return detail, fields


def error_for(
    response: httpx.Response,
    errors: Mapping[int, ErrorFactory] | None = None,
    *,
    has_token: bool = True,
) -> KeelError:
    """The error that `response` (a 4xx or 5xx whose body was read) stands for."""
    status = response.status_code
    detail, fields = problem_detail(response)
    if errors and status in errors:
        return errors[status](detail)
    if status in (401, 403):
        if status == 401 and not has_token:
            detail += " (this client sends no token: pass token=... or set KEEL_TOKEN)"
        return AuthError(detail)
    if status == 404:
        return NotFound(detail)
    if status == 409:
        return Conflict(detail)
    if status == 503:
        return ServerUnavailable(detail)
    if status == 422:
        failed = ValidationFailed(detail, [])
        failed.problems = fields
        return failed
    return ApiError(status, detail)


def unreachable(url: str, error: httpx.TransportError) -> ServerUnavailable:
    reason = str(error) or type(error).__name__
    return ServerUnavailable(
        f"the Keel server at {url} does not answer ({reason}): is `keel serve` running "
        "there, and is KEEL_URL right?"
    )
