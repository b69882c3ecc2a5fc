"""Errors as RFC 9457 problem documents: `application/problem+json` with a type, a title,
the status, a detail that says what to do, and for bad input the fields that were wrong.

Keel's own errors map to the status a client can act on; anything else is a 500 whose
detail does not leak internals (the traceback goes to the server log). The OpenAPI
document lists the problems each operation may answer with: those that follow from its
shape (401, 404, 400, 422) are added to every operation, the others each route declares
(`responses(409)`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.errors import (
    ConfigError,
    DuplicateAgent,
    IllegalTransition,
    KeelError,
    NotFound,
    SessionNotResumable,
    StoreError,
    UnknownAgent,
    ValidationFailed,
)
from keel.types import KeelModel

log = logging.getLogger("keel.server")

PROBLEM = "application/problem+json"

_STATUS: list[tuple[type[KeelError], int]] = [
    (NotFound, 404),
    (UnknownAgent, 422),
    (ValidationFailed, 422),
    (IllegalTransition, 409),
    (SessionNotResumable, 409),
    (ConfigError, 422),
    (DuplicateAgent, 422),
    (StoreError, 503),
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
    503: "Service unavailable",
}


class ProblemField(KeelModel):
    field: str = Field(description="Where the bad value is: `body.goal`, `query.limit`, ...")
    message: str


class Problem(KeelModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to do about it.")
    errors: list[ProblemField] | None = Field(
        default=None, description="For invalid input: each field that was wrong."
    )


_SCHEMA_REF = "#/components/schemas/Problem"


def _answer(status: int) -> dict[str, Any]:
    return {"description": _TITLES[status], "content": {PROBLEM: {"schema": {"$ref": _SCHEMA_REF}}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of the problems a route answers with besides those every route
    of its kind does (see `_document`): 403, 409, 503."""
    return {status: _answer(status) for status in statuses}


def _document(document: dict[str, Any]) -> None:
    """Put the problems that follow from an operation's shape in its responses: 401 where
    it takes a token, 404 where a path parameter names a record, 400 (a body that is not
    JSON) and 422 where it takes input; and make FastAPI's 422 a problem document."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            answers: dict[str, Any] = operation["responses"]
            implied = [401] if operation.get("security") else []
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                implied.append(404)
            if "requestBody" in operation:
                implied += [400, 422]
            if "422" in answers:
                answers["422"] = _answer(422)
            for status in implied:
                answers.setdefault(str(status), _answer(status))
    _, definitions = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every problem a route may answer with."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _document(document)
        app.openapi_schema = document
    return app.openapi_schema


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
    """Answer every error as a problem document, and document them in the OpenAPI."""

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
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
