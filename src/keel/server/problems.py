"""Errors as RFC 9457 problem documents: `application/problem+json` with a type, a title,
the status, a detail that says what to do, and for bad input the fields that were wrong.

Keel's own errors map to the status a client can act on; anything else is a 500 whose
detail does not leak internals (the traceback goes to the server log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.errors import (
    ConfigError,
    IllegalTransition,
    KeelError,
    NotFound,
    SessionNotResumable,
    UnknownAgent,
    ValidationFailed,
)

log = logging.getLogger("keel.server")

PROBLEM = "application/problem+json"

_STATUS: list[tuple[type[KeelError], int]] = [
    (NotFound, 404),
    (UnknownAgent, 422),
    (ValidationFailed, 422),
    (IllegalTransition, 409),
    (SessionNotResumable, 409),
    (ConfigError, 422),
]

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal server error",
}


class ApiProblem(Exception):
    """An error raised by a route with the status and detail to answer."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://keel.dev/problems/{status}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def status_of(error: KeelError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


def install(app: FastAPI) -> None:
    """Answer every error as a problem document."""

    async def keel_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, KeelError)
        extra: dict[str, Any] = {}
        if isinstance(error, ValidationFailed):
            extra["errors"] = [{"field": f, "message": m} for f, m in error.problems]
        return problem(status_of(error), str(error), **extra)

    async def api_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiProblem)
        response = problem(error.status, error.detail)
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(part) for part in item.get("loc", ())),
                "message": str(item.get("msg", "invalid")),
            }
            for item in error.errors()
        ]
        shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, f"the request is invalid: {shown}", errors=errors)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        response = problem(error.status_code, str(error.detail))
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    async def crash(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(500, "the server failed to handle this request; see its log")

    app.add_exception_handler(KeelError, keel_error)
    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)
