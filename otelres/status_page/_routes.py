"""Serving the status page: :func:`add_status_page` adds ``/``, its assets and ``/api/status``."""

from __future__ import annotations

import json
import logging
import threading
import time
from importlib import resources
from typing import TYPE_CHECKING

from otelres.health._server import HTTPRequest, HTTPResponse
from otelres.status_page._collector import StatusCollector

if TYPE_CHECKING:
    from otelres.health import HealthServer

__all__ = ["ASSETS", "add_status_page"]

_log = logging.getLogger("otelres.status_page")

#: The page's files (package data under ``otelres/status_page/static``) -> content type.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
}

# The page is self-contained: it may load nothing from anywhere but this server.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def add_status_page(
    server: HealthServer,
    collector: StatusCollector | None = None,
    *,
    path: str = "/",
    refresh_seconds: float = 1.0,
    check_max_age: float | None = 5.0,
    title: str | None = None,
) -> StatusCollector:
    """Serve the live status page on *server* (a :class:`~otelres.health.HealthServer`).

    Adds *path* (the page, default ``/``), ``/status/status.css``, ``/status/status.js``
    and the JSON document ``/api/status`` the page polls every *refresh_seconds*. Every
    file is package data served by *server* itself: the page works offline and loads
    nothing from elsewhere (a Content-Security-Policy says so to the browser).

    *collector* decides what is shown (default: a :class:`StatusCollector` over every
    breaker and limiter of the process and *server*'s checker). Health results come from
    the checker's latest run; when the newest is older than *check_max_age* seconds (or
    there is none), ``/api/status`` runs the checks first, so the page stays current even
    without a :class:`~otelres.health.HealthRunner` (None: never run them from here).
    Returns the collector::

        from otelres.health import HealthServer
        from otelres.status_page import add_status_page

        server = HealthServer(port=8080)
        add_status_page(server)
        server.start()            # http://127.0.0.1:8080/ is the page
    """
    if not refresh_seconds > 0:
        raise ValueError(f"refresh_seconds must be > 0, got {refresh_seconds!r}")
    if check_max_age is not None and check_max_age < 0:
        raise ValueError(f"check_max_age must be >= 0 or None, got {check_max_age!r}")
    if collector is None:
        collector = StatusCollector(server.checker, title=title or "otelres status")
    elif title is not None:
        collector.title = title
    page = _Page(server, collector, refresh_seconds, check_max_age)
    server.add_route(path, page.index)
    server.add_route("/status", page.asset, prefix=True)
    server.add_route("/api/status", page.status)
    return collector


class _Page:
    """The route handlers of one status page."""

    def __init__(
        self,
        server: HealthServer,
        collector: StatusCollector,
        refresh_seconds: float,
        check_max_age: float | None,
    ) -> None:
        self.server = server
        self.collector = collector
        self.refresh_seconds = refresh_seconds
        self.check_max_age = check_max_age
        self._refresh_lock = threading.Lock()

    def index(self, request: HTTPRequest) -> HTTPResponse:
        html = _asset("index.html").decode("utf-8")
        html = html.replace("{{title}}", _escape(self.collector.title)).replace(
            "{{refresh_ms}}", str(int(self.refresh_seconds * 1000))
        )
        return HTTPResponse(200, html.encode("utf-8"), ASSETS["index.html"], _headers())

    def asset(self, request: HTTPRequest) -> HTTPResponse:
        name = request.path.rsplit("/", 1)[-1]
        if name not in ASSETS or name == "index.html":
            return HTTPResponse.text(f"not found: {request.path}\n", 404)
        return HTTPResponse(200, _asset(name), ASSETS[name], _headers())

    def status(self, request: HTTPRequest) -> HTTPResponse:
        self._refresh_checks()
        body = json.dumps(self.collector.snapshot(), separators=(",", ":")).encode("utf-8")
        return HTTPResponse(200, body, "application/json", _headers())

    def _refresh_checks(self) -> None:
        """Run the checks when their newest result is older than ``check_max_age``."""
        checker = self.collector.checker
        if checker is None or self.check_max_age is None or not checker.checks:
            return
        # One request runs them; concurrent requests show what is there meanwhile.
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            latest = checker.latest_results()
            newest = max((r.timestamp for r in latest.values()), default=None)
            if newest is None or time.time() - newest > self.check_max_age:
                self.server.run_checks()
        except Exception:
            _log.warning("otelres: running health checks for the status page failed", exc_info=True)
        finally:
            self._refresh_lock.release()


def _asset(name: str) -> bytes:
    return resources.files("otelres.status_page").joinpath("static").joinpath(name).read_bytes()


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
