"""Structured logging: JSON in production, readable lines on a terminal.

Every record passes `redact_secrets` on its way to the handler, whichever logger
produced it, so a token or password bound by mistake is never written out.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

REDACTED = "[redacted]"
# Keys whose values are secrets wherever they appear in a log record (compared lower-cased,
# with "-" read as "_"); keys that merely contain one of these words are redacted too.
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "authorization",
        "cookie",
        "set_cookie",
        "secret",
        "secret_key",
        "client_secret",
        "csrf",
        "csrf_token",
        "api_key",
    }
)
_SECRET_WORDS = ("password", "passwd", "token", "secret", "authorization", "cookie", "api_key")
# A JWT (three base64url parts, the first one a JSON header) or a bearer credential inside free text
# (8 characters at least, so that prose such as "a bearer token" stays readable).
_SECRET_TEXT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+|(?i:bearer)\s+[\w.~+/=-]{8,}")


# HTTP clients (httpx logs every request at INFO) name the URLs they fetch, and a URL's path or
# query may be a credential: a calendar's secret iCal address, a signed link. Their records keep
# the scheme and host only.
_URL = re.compile(r"\b((?:https?|wss?)://[^/\s\"'?#]+)[/?#][^\s\"']*")
_HTTP_CLIENT_LOGGERS = frozenset({"httpx", "httpcore"})


def _is_secret_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return name in SECRET_KEYS or any(word in name for word in _SECRET_WORDS)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_TEXT.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _is_secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the values of secret-looking keys, and JWTs or bearer credentials in text, by a marker.

    In the records of HTTP client libraries, URLs lose their path and query too.
    """
    http_client = str(event_dict.get("logger", "")).split(".")[0] in _HTTP_CLIENT_LOGGERS
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # structlog's own bookkeeping (the stdlib record, the logger)
            continue
        event_dict[key] = REDACTED if _is_secret_key(key) else _scrub(value)
        if http_client and isinstance(event_dict[key], str):
            event_dict[key] = _URL.sub(rf"\1/{REDACTED}", event_dict[key])
    return event_dict


def configure_logging(
    *, level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto", stream: TextIO | None = None
) -> None:
    """Route stdlib and structlog records through one structured renderer (to stderr unless `stream`)."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        # filter_by_level first: a disabled level costs one check, not the whole chain.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            # Redact at the handler: loggers cached under an earlier configuration pass here too.
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_secrets, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every plugin it loads; its warnings are what matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structured logger; bind request or tip ids on it, never secrets."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
