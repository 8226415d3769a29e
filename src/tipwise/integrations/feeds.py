"""Read an iCalendar feed over HTTP, conditionally (ETag / Last-Modified are the sync cursor).

Error messages name what went wrong and the feed's host, never its address:
the path of a secret iCal address is the credential.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from tipwise import __version__

MAX_REDIRECTS = 5


class FeedError(Exception):
    """The feed could not be read; `str()` is a message for the person, safe to show and log."""


@dataclass(frozen=True, kw_only=True)
class Fetched:
    """One read: the body (None: not modified since the cursor) and the new cursor."""

    body: bytes | None
    etag: str | None
    last_modified: str | None


def normalize_url(url: str) -> str:
    """Return the feed address to read (webcal:// is https://); raise FeedError when it cannot be one."""
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("webcal", "webcals"):
        url = "https" + url[len(parts.scheme) :]
        parts = urlsplit(url)
        scheme = "https"
    if scheme not in ("http", "https"):
        raise FeedError("the feed address must start with https://, http:// or webcal://")
    if not parts.hostname:
        raise FeedError("the feed address has no host name")
    return url


def host_of(url: str) -> str:
    """Return the host of a feed address: the label a person sees for a connection."""
    return urlsplit(url).hostname or "?"


class FeedReader:
    """Reads feeds with httpx; one instance is shared by every sync (it keeps no state between reads)."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        allow_private_addresses: bool,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._allow_private = allow_private_addresses
        self._transport = transport

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """Read `url`; with a cursor, ask for the body only if it changed. Raise FeedError."""
        headers = {"User-Agent": f"Tipwise/{__version__} (calendar sync)", "Accept": "text/calendar, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = host_of(url)
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport, follow_redirects=False) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    self._check_address(url)
                    with client.stream("GET", url, headers=headers) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = normalize_url(urljoin(url, response.headers["location"]))
                            host = host_of(url)
                            continue
                        return self._read(response, host=host)
                raise FeedError(f"{host} redirected more than {MAX_REDIRECTS} times")
        except httpx.TimeoutException:
            raise FeedError(f"{host} did not answer within {self._timeout:g} seconds") from None
        except httpx.HTTPError as exc:
            raise FeedError(f"could not read the feed from {host} ({type(exc).__name__})") from None

    def _read(self, response: httpx.Response, *, host: str) -> Fetched:
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if response.status_code == 304:
            return Fetched(body=None, etag=etag, last_modified=last_modified)
        if response.status_code != 200:
            raise FeedError(f"{host} answered HTTP {response.status_code} instead of the calendar")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            raise FeedError(f"the calendar from {host} is bigger than {self._max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise FeedError(f"the calendar from {host} is bigger than {self._max_bytes} bytes")
            chunks.append(chunk)
        return Fetched(body=b"".join(chunks), etag=etag, last_modified=last_modified)

    def _check_address(self, url: str) -> None:
        if self._allow_private:
            return
        host = urlsplit(url).hostname or ""
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            raise FeedError(f"the host name {host} does not resolve") from None
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not address.is_global:
                raise FeedError(f"{host} is on a private or local network address, which feeds may not use")
