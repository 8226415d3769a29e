"""Feed addresses: what is accepted, and how webcal:// is read."""

from __future__ import annotations

import pytest

from tipwise.integrations.feeds import FeedError, host_of, normalize_url


class TestNormalizeUrl:
    @pytest.mark.parametrize(
        ("given", "read"),
        [
            ("webcal://p01-caldav.icloud.com/published/2/abc", "https://p01-caldav.icloud.com/published/2/abc"),
            ("WEBCAL://example.com/a.ics", "https://example.com/a.ics"),
            (
                "  https://calendar.google.com/calendar/ical/x/private-y/basic.ics ",
                "https://calendar.google.com/calendar/ical/x/private-y/basic.ics",
            ),
            ("http://intranet.example/cal.ics", "http://intranet.example/cal.ics"),
        ],
    )
    def test_webcal_is_https_and_http_addresses_stay(self, given: str, read: str) -> None:
        assert normalize_url(given) == read

    @pytest.mark.parametrize(
        ("given", "message"),
        [
            ("ftp://example.com/a.ics", "must start with"),
            ("file:///etc/passwd", "must start with"),
            ("https:///a.ics", "no host"),
        ],
    )
    def test_other_schemes_and_hostless_addresses_are_refused(self, given: str, message: str) -> None:
        with pytest.raises(FeedError, match=message):
            normalize_url(given)

    def test_the_label_is_the_host_only(self) -> None:
        assert host_of("https://calendar.google.com/calendar/ical/secret/basic.ics") == "calendar.google.com"
