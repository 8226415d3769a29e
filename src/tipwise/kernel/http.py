"""HTTP plumbing shared by every router: problem+json errors, request ids, latency metrics."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tipwise.kernel.errors import PROBLEM_JSON, TipwiseError, problem_document
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics

log = get_logger("tipwise.http")


def _problem(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, as `application/problem+json`."""

    async def tipwise_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, TipwiseError):  # registered for this type only
            raise exc
        return _problem(exc.problem(instance=request.url.path), exc.headers or None)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # registered for this type only
            raise exc
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "the request is not valid"
        return _problem(
            problem_document(
                status=422, code="invalid_input", detail=detail, instance=request.url.path, extra={"errors": errors}
            )
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # registered for this type only
            raise exc
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _problem(
            problem_document(status=exc.status_code, code=code, detail=str(exc.detail), instance=request.url.path),
            dict(exc.headers) if exc.headers else None,
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError | InterfaceError):
            if not exc.connection_invalidated:
                return await unexpected_error(request, exc)
        # The transaction rolled back: nothing of the request was written. The pool reconnects
        # (pre-ping) once the database is back, without a restart.
        log.warning("database_unavailable", path=request.url.path, error=type(exc).__name__)
        return _problem(
            problem_document(
                status=503,
                code="database_unavailable",
                detail="the database is unreachable right now; nothing was changed, try again shortly",
                instance=request.url.path,
            ),
            {"Retry-After": "5"},
        )

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return _problem(
            problem_document(
                status=500, code="internal_error", detail="something went wrong on our side", instance=request.url.path
            )
        )

    app.add_exception_handler(TipwiseError, tipwise_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_unavailable)
    app.add_exception_handler(SQLAlchemyTimeoutError, database_unavailable)
    app.add_exception_handler(Exception, unexpected_error)


class RequestContextMiddleware:
    """Give each request an id (echoed as `X-Request-ID`), log it, and time it per route."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_request_duration.labels(scope["method"], template, str(status)).observe(elapsed)
            if template not in {"/metrics", "/healthz", "/readyz"}:
                log.info("request", method=scope["method"], route=template, status=status, ms=round(elapsed * 1e3, 2))
            structlog.contextvars.unbind_contextvars("request_id")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = bytes(value).decode("latin-1")[:64]
            if candidate.replace("-", "").isalnum():
                return candidate
    return None


class Problem(BaseModel):
    """An error, as RFC 9457 `application/problem+json`."""

    type: str = Field(examples=["urn:tipwise:problem:not_found"])
    title: str
    status: int
    code: str = Field(description="Stable, machine-readable error code.")
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = Field(default=None, description="Per-field problems of a 422.")


_DESCRIPTIONS = {
    401: "Missing, expired or invalid bearer token.",
    403: "Not allowed.",
    404: "Not found (or not yours).",
    409: "Conflicts with the current state.",
    422: "The request is not valid; `errors` names each field.",
    429: "Too many attempts; the `Retry-After` header says in how many seconds to try again.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document error responses of a route as problem+json."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def use_problem_media_type_in_openapi(app: FastAPI) -> None:
    """Document error responses as problem+json only (FastAPI also lists application/json for a model)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        content = response.get("content", {})
                        if PROBLEM_JSON in content:
                            content.pop("application/json", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
