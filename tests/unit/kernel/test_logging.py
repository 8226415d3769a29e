"""Log redaction of URLs in the records of HTTP client libraries."""

from __future__ import annotations

from tipwise.kernel.logging import REDACTED, redact_secrets

FEED = "https://calendar.example.com/calendar/ical/secret-token/basic.ics?key=abc"


class TestUrlRedaction:
    def test_an_http_client_record_keeps_the_scheme_and_host_only(self) -> None:
        record = {"event": f'HTTP Request: GET {FEED} "HTTP/1.1 200 OK"', "logger": "httpx"}
        redacted = redact_secrets(None, "info", record)
        assert redacted["event"] == f'HTTP Request: GET https://calendar.example.com/{REDACTED} "HTTP/1.1 200 OK"'

    def test_child_loggers_of_http_clients_are_redacted_too(self) -> None:
        record = {"event": f"connect to {FEED}", "logger": "httpcore.connection"}
        assert "secret-token" not in str(redact_secrets(None, "debug", record)["event"])

    def test_a_bare_host_and_other_loggers_are_left_alone(self) -> None:
        bare = {"event": "HTTP Request: GET https://example.com", "logger": "httpx"}
        assert redact_secrets(None, "info", bare)["event"] == "HTTP Request: GET https://example.com"
        ours = {"event": "issuer https://id.example.com/realms/main", "logger": "tipwise.auth.oidc"}
        assert redact_secrets(None, "info", ours)["event"] == "issuer https://id.example.com/realms/main"
