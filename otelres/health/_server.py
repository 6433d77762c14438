"""HTTP probes: ``/livez``, ``/readyz``, ``/health`` and ``/metrics`` on a small threaded server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from otelres.health._checker import HealthChecker
from otelres.health._model import HealthResult, HealthStatus
from otelres.health._report import HealthReport
from otelres.health._threads import CLOSE_GRACE_SECONDS, drain, new_loop

__all__ = ["LIVENESS_TAG", "HTTPRequest", "HTTPResponse", "Handler", "HealthServer", "serve"]

_log = logging.getLogger("otelres.health")

#: Checks carrying this tag make up ``/livez``; without any, ``/livez`` only proves the
#: process answers (a liveness failure restarts the pod, so keep dependencies out of it).
LIVENESS_TAG = "liveness"

# How often serve_forever looks for a shutdown request: close() waits up to this long.
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class HTTPRequest:
    """What a route handler gets: method, path, parsed query (every value a list), headers."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        """True when ``?name`` is present (``?verbose``, ``?verbose=1``), unless ``=0`` or ``=false``."""
        values = self.query.get(name)
        if values is None:
            return False
        return values[-1].lower() not in ("0", "false", "no")

    def values(self, name: str) -> list[str]:
        """Every value of query parameter *name*; comma-separated values are split."""
        return [part for value in self.query.get(name, []) for part in value.split(",") if part]


@dataclass(frozen=True)
class HTTPResponse:
    """What a route handler returns."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, status: int = 200) -> HTTPResponse:
        return cls(status, text.encode("utf-8"))

    @classmethod
    def json(cls, data: Any, status: int = 200) -> HTTPResponse:
        body = json.dumps(data, indent=2, default=str).encode("utf-8")
        return cls(status, body, "application/json")


#: A route handler; it runs on the server's request thread.
Handler = Callable[[HTTPRequest], HTTPResponse]


class HealthServer:
    """The probe server behind ``otelres serve`` and :func:`serve`; more routes can be added.

    Endpoints (GET or HEAD):

    ``/livez``, ``/livez/<check>``
        Kubernetes liveness: the checks tagged ``"liveness"`` (none: just "ok").
    ``/readyz``, ``/readyz/<check>``
        Kubernetes readiness: every check. Both answer 200 for GREEN and YELLOW and 503 for
        RED; ``?verbose`` lists ``[+]name ok`` / ``[-]name failed: ...`` lines (a failure
        always does), ``?exclude=NAME`` (repeatable) leaves a check out.
    ``/health``
        The JSON report (the ``otelres health --json`` schema), 503 when RED;
        ``?check=NAME`` and ``?tag=TAG`` select checks.
    ``/metrics``
        Prometheus text format from ``prometheus_client``'s registry, when the
        Prometheus exporter is on (*metrics* None: when ``[telemetry] metrics_exporter``
        has ``prometheus`` or the exporter is loaded), else 404.

    Add a page with :meth:`add_route`::

        def status_page(request: HTTPRequest) -> HTTPResponse:
            return HTTPResponse(200, b"<h1>up</h1>", "text/html; charset=utf-8")

        server.add_route("/", status_page)

    Checks run on an event loop: *loop* (say, the application's, when its async checks
    use clients bound to it) or one the server runs on its own thread. A request waits for
    its report up to the longest check timeout plus ``report_grace_seconds``, then answers
    503 (a blocked or stopped *loop* cannot hang the probes).
    """

    report_grace_seconds = 5.0

    def __init__(
        self,
        checker: HealthChecker | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        metrics: bool | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.checker = checker if checker is not None else HealthChecker()
        settings = self.checker.config.health_checks
        self._routes: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []
        self._loop = loop
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._serve_thread: threading.Thread | None = None
        self._closed = False
        if metrics is None:
            exporters = self.checker.config.telemetry.metrics_exporter
            metrics = "prometheus" in exporters or "opentelemetry.exporter.prometheus" in sys.modules
        self.metrics_enabled = metrics
        self._httpd = _Server(
            (settings.host if host is None else host, settings.port if port is None else port),
            _RequestHandler,
        )
        self._httpd.owner = self
        self.add_route("/", self._index)
        self.add_route("/livez", self._livez, prefix=True)
        self.add_route("/readyz", self._readyz, prefix=True)
        self.add_route("/health", self._health)
        self.add_route("/metrics", self._metrics)

    # ------------------------------------------------------------------ public
    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The port bound (useful with ``port=0``)."""
        return int(self._httpd.server_address[1])

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop checks run on (the one given, else the server's own, started now)."""
        return self._ensure_loop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        return f"http://{self.host}:{self.port}"

    def add_route(self, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Serve *path* with *handler* (replacing an existing route); with *prefix*, also ``path/...``."""
        if not path.startswith("/"):
            raise ValueError(f"a route path must start with '/', got {path!r}")
        self._routes[path] = handler
        if prefix:
            self._prefixes = [(p, h) for p, h in self._prefixes if p != path]
            self._prefixes.append((path.rstrip("/") + "/", handler))

    def start(self) -> HealthServer:
        """Serve on a daemon thread and return at once (nothing happens when already serving)."""
        if self._serve_thread is not None:
            return self
        self._ensure_loop()
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="otelres-health-server",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`close` (from another thread) or Ctrl-C."""
        self._ensure_loop()
        try:
            self._httpd.serve_forever(poll_interval=_POLL_SECONDS)
        finally:
            self.close()

    def close(self) -> None:
        """Stop serving, release the port and stop the server's own loop."""
        if self._closed:
            return
        self._closed = True
        if self._serve_thread is not None:
            self._httpd.shutdown()
            self._serve_thread.join(5)
        self._httpd.server_close()
        self._httpd.close_connections()
        loop = self._own_loop
        if loop is not None and not loop.is_closed():
            # Drained on its own thread, so close() works from any thread, one running an
            # event loop of its own included.
            try:
                asyncio.run_coroutine_threadsafe(drain(), loop).result(CLOSE_GRACE_SECONDS + 2)
            except Exception:  # a check blocks the loop: leave what is left to the process exit
                _log.debug("otelres: health server loop did not drain", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5)
            if not loop.is_running():
                loop.close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def run_checks(
        self,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> HealthReport:
        """Run checks on the server's loop from a request thread and wait for the report.

        Raises ``TimeoutError`` when the loop does not deliver a report well after the
        longest check timeout (a loop that is blocked or no longer running).
        """
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(
            self.checker.run(names, tags, exclude=exclude), loop
        )
        longest = max([self.checker.timeout, *(c.timeout or 0.0 for c in self.checker.checks)])
        try:
            return future.result(timeout=longest + self.report_grace_seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"no health report within {longest + self.report_grace_seconds:g} s: "
                "is the event loop running?"
            ) from None

    # ------------------------------------------------------------------ routing
    def dispatch(self, request: HTTPRequest) -> HTTPResponse:
        """Route *request* to its handler: exact paths first, then prefixes; never raises.

        A handler that raises gives 500 (and is logged); one that runs out of time gives 503.
        """
        handler = self._routes.get(request.path)
        if handler is None:
            for prefix, candidate in self._prefixes:
                if request.path.startswith(prefix):
                    handler = candidate
                    break
        if handler is None:
            return HTTPResponse.text(f"not found: {request.path}\n", 404)
        try:
            return handler(request)
        except TimeoutError as exc:
            _log.error("otelres: health endpoint %s: %s", request.path, exc)
            return HTTPResponse.text(f"{exc}\n", 503)
        except Exception as exc:
            _log.exception("otelres: health endpoint %s failed", request.path)
            return HTTPResponse.text(f"internal error: {type(exc).__name__}\n", 500)

    def _index(self, request: HTTPRequest) -> HTTPResponse:
        """``/``: a plain list of the endpoints (replace it with :meth:`add_route`)."""
        lines = [
            "otelres health endpoints:",
            "  /livez  /readyz  (?verbose, ?exclude=NAME)",
            "  /health (JSON; ?check=NAME, ?tag=TAG)",
        ]
        if self.metrics_enabled:
            lines.append("  /metrics")
        return HTTPResponse.text("\n".join(lines) + "\n")

    def _livez(self, request: HTTPRequest) -> HTTPResponse:
        """``/livez`` and ``/livez/<name>``: the checks tagged ``liveness``."""
        return self._probe(request, "livez", tags=[LIVENESS_TAG])

    def _readyz(self, request: HTTPRequest) -> HTTPResponse:
        """``/readyz`` and ``/readyz/<name>``: every check."""
        return self._probe(request, "readyz", tags=None)

    def _probe(self, request: HTTPRequest, kind: str, tags: list[str] | None) -> HTTPResponse:
        """A Kubernetes-style probe answer over the checks *tags* selects (None: all).

        ``ok`` when passing; the ``[+]``/``[-]`` listing with ``?verbose`` and on every failure,
        ending in ``<kind> check passed|failed``. Unknown ``?exclude`` names are warned about
        in the listing, as Kubernetes does, rather than failing the probe.
        """
        single = request.path[len(kind) + 2 :] if request.path.startswith(f"/{kind}/") else ""
        known = [c for c in self.checker.checks if tags is None or set(tags) & c.tags]
        notes: list[str] = []
        if single:
            # As in Kubernetes, /livez/<name> exists only for the checks /livez runs.
            if single not in {c.name for c in known}:
                return HTTPResponse.text(f"{kind}: no check named {single!r}\n", 404)
            chosen = [single]
        else:
            excluded = request.values("exclude")
            unmatched = [n for n in excluded if n not in {c.name for c in known}]
            if unmatched:
                names = ", ".join(repr(n) for n in unmatched)
                notes.append(f"warn: some health checks cannot be excluded: no matches for {names}")
            chosen = [c.name for c in known if c.name not in excluded]
        report = self.run_checks(chosen) if chosen else HealthReport.of({})
        failed = report.overall is HealthStatus.RED
        status = 503 if failed else 200
        verbose = request.flag("verbose")
        if single and not verbose:
            return HTTPResponse.text(_verbose_line(report.results[single]) + "\n", status)
        if not failed and not verbose:
            return HTTPResponse.text("ok\n", status)
        lines = [*notes, *(_verbose_line(r) for r in report.results.values())]
        lines.append(f"{kind} check {'failed' if failed else 'passed'}")
        return HTTPResponse.text("\n".join(lines) + "\n", status)

    def _health(self, request: HTTPRequest) -> HTTPResponse:
        """``/health``: the JSON report, 503 when RED, 400 for an unknown ``?check`` name."""
        names = request.values("check")
        tags = request.values("tag")
        try:
            report = self.run_checks(names or None, tags or None, request.values("exclude"))
        except ValueError as exc:
            return HTTPResponse.json({"error": str(exc)}, 400)
        return HTTPResponse.json(report.to_dict(), 503 if report.overall is HealthStatus.RED else 200)

    def _metrics(self, request: HTTPRequest) -> HTTPResponse:
        """``/metrics``: prometheus_client's default registry, which the OTel Prometheus reader feeds."""
        if not self.metrics_enabled:
            return HTTPResponse.text(
                "the Prometheus exporter is not enabled "
                '([telemetry] metrics_exporter = ["prometheus"])\n',
                404,
            )
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        return HTTPResponse(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ loop
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop checks run on: the one given, else a private loop on a daemon thread."""
        if self._loop is not None:
            return self._loop
        if self._own_loop is None:
            loop = new_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="otelres-health-loop", daemon=True
            )
            thread.start()
            self._own_loop, self._loop_thread = loop, thread
        return self._own_loop


def _verbose_line(result: HealthResult) -> str:
    """One verbose probe line: ``[+]name ok``, ``[+]name degraded: ...``, ``[-]name failed: ...``."""
    if result.status is HealthStatus.GREEN:
        return f"[+]{result.name} ok"
    if result.status is HealthStatus.YELLOW:
        return f"[+]{result.name} degraded: {result.message}"
    return f"[-]{result.name} failed: {result.message}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HealthServer

    def server_activate(self) -> None:
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections, so that a closed server answers nobody any more."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "otelres-health"
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stalls mid-request does not hold a thread for ever

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        """Parse the request line, dispatch, and write the response (without a body for HEAD)."""
        parts = urlsplit(self.path)
        request = HTTPRequest(
            method=self.command,
            path=parts.path or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        response = self.server.owner.dispatch(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("health endpoint: " + format, *args)


def serve(
    checker: HealthChecker | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    metrics: bool | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    background: bool = False,
) -> HealthServer:
    """Serve the probes of *checker* (default: ``HealthChecker()`` from the configuration).

    Binds ``[health_checks] host``/``port`` (127.0.0.1:8080) unless given; ``port=0``
    picks a free port. With ``background=True`` it returns the running
    :class:`HealthServer` at once (``server.close()`` stops it); otherwise it serves
    until interrupted. See :class:`HealthServer` for the endpoints.
    """
    server = HealthServer(checker, host=host, port=port, metrics=metrics, loop=loop)
    if background:
        return server.start()
    server.serve_forever()
    return server
