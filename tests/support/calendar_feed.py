"""A calendar provider for tests: a real HTTP server publishing an iCalendar feed, with ETag and Last-Modified.

It answers `If-None-Match` / `If-Modified-Since` with 304 as providers do,
and records every request, so a test can tell whether a sync asked at all.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FEED_PATH = "/calendar/ical/secret-token-3f9a7c/basic.ics"


@dataclass(frozen=True, kw_only=True)
class Request:
    path: str
    headers: dict[str, str]


@dataclass
class CalendarFeed:
    """What the server publishes; change `body` to publish a new version of the calendar."""

    base_url: str = ""
    body: bytes = b""
    content_type: str = "text/calendar; charset=utf-8"
    status: int = 200
    modified: datetime = field(default_factory=lambda: datetime(2026, 11, 1, tzinfo=UTC))
    requests: list[Request] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.base_url + FEED_PATH

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


def _handler(feed: CalendarFeed) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            feed.requests.append(Request(path=self.path, headers={k.lower(): v for k, v in self.headers.items()}))
            if self.path != FEED_PATH:
                self._answer(404, b"not found", "text/plain")
                return
            if feed.status != 200:
                self._answer(feed.status, b"error", "text/plain")
                return
            if self.headers.get("If-None-Match") == feed.etag:
                self._answer(304, b"", None)
                return
            self._answer(200, feed.body, feed.content_type)

        def _answer(self, status: int, body: bytes, content_type: str | None) -> None:
            feed.answers.append(status)
            self.send_response(status)
            self.send_header("ETag", feed.etag)
            self.send_header("Last-Modified", format_datetime(feed.modified, usegmt=True))
            if status != 304:
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextmanager
def calendar_feed(body: bytes = b"") -> Iterator[CalendarFeed]:
    """Serve a feed on a free port of 127.0.0.1 in a thread; yield it."""
    feed = CalendarFeed(body=body)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(feed))
    feed.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield feed
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
