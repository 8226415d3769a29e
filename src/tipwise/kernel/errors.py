"""One error hierarchy, rendered as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

PROBLEM_JSON = "application/problem+json"


class TipwiseError(Exception):
    """Base error: carries an HTTP status and a stable machine-readable code."""

    status: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    @property
    def headers(self) -> dict[str, str]:
        """Return the HTTP headers that go with this error's response."""
        return {}

    def problem(self, *, instance: str | None = None) -> dict[str, Any]:
        """Return the RFC 9457 problem document for this error."""
        return problem_document(
            status=self.status, code=self.code, detail=self.detail, instance=instance, extra=self.extra
        )


class InvalidInput(TipwiseError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_input"


class NotFound(TipwiseError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class Conflict(TipwiseError):
    status = HTTPStatus.CONFLICT
    code = "conflict"


class Unauthorized(TipwiseError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(TipwiseError):
    status = HTTPStatus.FORBIDDEN
    code = "forbidden"


class TooManyRequests(TipwiseError):
    """Refused for now; `retry_after` says in how many seconds to try again."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "too_many_requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ConfigurationError(TipwiseError):
    """Raised at start-up when configuration or bundled data is unusable."""

    code = "configuration_error"


def problem_document(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a problem+json body; `type` is a stable URN made from the code."""
    body: dict[str, Any] = {
        "type": f"urn:tipwise:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return body
