"""Gateway: the server-rendered web pages (Jinja2 + htmx) over the module facades."""

from tipwise.gateway.web import DataActions, mount

__all__ = ["DataActions", "mount"]
