"""Unit tests of the error hierarchy and its problem+json documents."""

from __future__ import annotations

import pytest

from tipwise.kernel.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TipwiseError,
    Unauthorized,
    problem_document,
)


class TestProblemDocument:
    def test_document_has_urn_type_status_title_code_detail_and_instance(self) -> None:
        body = problem_document(status=404, code="not_found", detail="no such tip", instance="/api/tips/42")

        assert body == {
            "type": "urn:tipwise:problem:not_found",
            "title": "Not Found",
            "status": 404,
            "code": "not_found",
            "detail": "no such tip",
            "instance": "/api/tips/42",
        }

    def test_document_without_instance_leaves_it_out(self) -> None:
        body = problem_document(status=409, code="conflict", detail="taken")

        assert "instance" not in body
        assert body["title"] == "Conflict"

    def test_extra_members_are_added_to_the_document(self) -> None:
        body = problem_document(status=422, code="invalid_input", detail="bad", extra={"field": "email"})

        assert body["field"] == "email"
        assert body["title"] == "Unprocessable Entity"


class TestTipwiseErrors:
    @pytest.mark.parametrize(
        ("error_type", "status", "code", "title"),
        [
            (TipwiseError, 500, "internal_error", "Internal Server Error"),
            (InvalidInput, 422, "invalid_input", "Unprocessable Entity"),
            (NotFound, 404, "not_found", "Not Found"),
            (Conflict, 409, "conflict", "Conflict"),
            (Unauthorized, 401, "unauthorized", "Unauthorized"),
            (Forbidden, 403, "forbidden", "Forbidden"),
            (ConfigurationError, 500, "configuration_error", "Internal Server Error"),
        ],
    )
    def test_each_error_renders_its_status_and_code(
        self, error_type: type[TipwiseError], status: int, code: str, title: str
    ) -> None:
        body = error_type("what went wrong").problem(instance="/here")

        assert body["status"] == status
        assert body["code"] == code
        assert body["type"] == f"urn:tipwise:problem:{code}"
        assert body["detail"] == "what went wrong"
        assert body["instance"] == "/here"
        assert body["title"] == title

    def test_error_keeps_its_detail_as_message_and_extra_in_the_document(self) -> None:
        error = Conflict("an account with this email already exists", extra={"field": "email"})

        assert str(error) == "an account with this email already exists"
        assert error.problem()["field"] == "email"
        assert "instance" not in error.problem()
