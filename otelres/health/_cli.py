"""``otelres health`` and ``otelres serve``.

Exit statuses of ``otelres health``: 0 GREEN, 1 YELLOW, 2 RED (a service that ``--url``
cannot reach counts as RED), 3 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from otelres._cli import port_number, seconds

if TYPE_CHECKING:
    from otelres.config import Config
    from otelres.health._checker import HealthChecker
    from otelres.health._report import HealthReport

__all__ = ["EXIT_USAGE", "add_parser", "render_table"]

#: Exit status for bad arguments or configuration (0, 1, 2 are GREEN, YELLOW, RED).
EXIT_USAGE = 3


def add_parser(subparsers: Any) -> None:
    """Add ``health`` and ``serve`` to the ``otelres`` command."""
    health = subparsers.add_parser(
        "health",
        help="run health checks: GREEN / YELLOW / RED",
        description=(
            "Run the health checks of [health_checks] (or ask a running service with --url) "
            "and print a traffic-light table, or the JSON report with --json. "
            "Exit status: 0 GREEN, 1 YELLOW, 2 RED, 3 usage or configuration error."
        ),
    )
    health.usage_status = EXIT_USAGE
    health.add_argument("--json", action="store_true", help="print the JSON report")
    health.add_argument(
        "--check", action="append", default=[], metavar="NAME", help="run only this check (repeatable)"
    )
    health.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="run checks with this tag (repeatable)"
    )
    health.add_argument(
        "--timeout", type=seconds(), metavar="S", help="per-check timeout in seconds"
    )
    health.add_argument("--config", metavar="PATH", help="configuration file (default: ./config.toml)")
    health.add_argument(
        "--url", metavar="URL", help="ask the /health endpoint of a running service instead"
    )
    health.add_argument(
        "--watch", type=seconds(), metavar="S", help="run again every S seconds until Ctrl-C"
    )
    health.set_defaults(func=_health)

    serve = subparsers.add_parser(
        "serve",
        help="serve /livez, /readyz, /health and /metrics",
        description=(
            "Serve the health probes of [health_checks] over HTTP (127.0.0.1:8080 unless "
            "configured), running the checks every interval_seconds in the background."
        ),
    )
    serve.usage_status = EXIT_USAGE
    serve.add_argument("--host", help="address to bind (default: [health_checks] host)")
    serve.add_argument("--port", type=port_number, help="port to bind (default: [health_checks] port)")
    serve.add_argument("--config", metavar="PATH", help="configuration file (default: ./config.toml)")
    serve.set_defaults(func=_serve)


# --------------------------------------------------------------------------- health
def _health(args: argparse.Namespace) -> int:
    """`otelres health`: run the checks here (or read --url), print, return 0/1/2 or 3.

    Configuration problems are reported before anything runs, each line naming the file and
    key, so a typo in config.toml never looks like a RED system.
    """
    import logging

    # The table already says what changed; Python's last-resort handler would repeat it.
    logging.getLogger("otelres.health").addHandler(logging.NullHandler())
    out = sys.stdout
    if args.url:
        fetch: Callable[[], HealthReport] = lambda: _fetch(args.url, args.check, args.tag, args.timeout)  # noqa: E731
        try:
            return _loop(lambda: _report_or_red(fetch), args, out)
        except _Refused as exc:
            _error(str(exc))
            return EXIT_USAGE
    loaded = _load(args.config)
    if isinstance(loaded, int):
        return loaded
    checker = _checker(loaded, args.timeout)
    if checker is None:
        return EXIT_USAGE
    try:
        checker.select(args.check or None, args.tag or None)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.watch is None:
        report = checker.run_sync(args.check or None, args.tag or None, timeout=args.timeout)
        _print(report, args.json, out)
        return report.exit_status
    return _watch_local(checker, args, out)


def _watch_local(checker: HealthChecker, args: argparse.Namespace, out: IO[str]) -> int:
    """--watch for local checks: one checker and one event loop for every round.

    Keeping both alive is what makes caching, flapping protection and history work across
    rounds, as they do in a long-running service.
    """
    import asyncio

    from otelres.health._threads import run_coroutine

    last = [EXIT_USAGE]

    async def watch() -> None:
        while True:
            report = await checker.run(args.check or None, args.tag or None, timeout=args.timeout)
            _show(report, args, out)
            last[0] = report.exit_status
            await asyncio.sleep(args.watch)

    try:
        run_coroutine(watch())
    except KeyboardInterrupt:
        pass
    return last[0]


def _loop(produce: Callable[[], HealthReport], args: argparse.Namespace, out: IO[str]) -> int:
    """Run *produce* once, or every --watch seconds until Ctrl-C; return the last exit status."""
    if args.watch is None:
        report = produce()
        _print(report, args.json, out)
        return report.exit_status
    status = EXIT_USAGE
    try:
        while True:
            report = produce()
            _show(report, args, out)
            status = report.exit_status
            time.sleep(args.watch)
    except KeyboardInterrupt:
        pass
    return status


def _show(report: HealthReport, args: argparse.Namespace, out: IO[str]) -> None:
    """One --watch frame: the table redrawn on a terminal, one JSON line per run otherwise."""
    if args.json:
        out.write(report.to_json(indent=None) + "\n")
    else:
        if out.isatty():
            out.write("\x1b[H\x1b[2J")
        out.write(render_table(report, out))
        out.write(f"(every {args.watch:g} s; Ctrl-C to stop)\n")
    out.flush()


def _print(report: HealthReport, as_json: bool, out: IO[str]) -> None:
    out.write(report.to_json() + "\n" if as_json else render_table(report, out))
    out.flush()


def _load(path: str | None) -> Config | int:
    """Load and install the configuration; an int is the exit status of a failure.

    The working directory is put on ``sys.path`` so ``[health_checks.custom]`` import paths
    resolve against the project, as they would under ``python -m``.
    """
    from otelres.config import ConfigError, load_config, set_current

    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            _error(problem)
        return EXIT_USAGE
    set_current(config)
    # Import paths in [health_checks.custom] name the project's own modules, which live
    # beside config.toml: make them importable as `python -m` would.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return config


def _checker(config: Config, timeout: float | None) -> HealthChecker | None:
    """A checker for *config*, or None after printing every configuration problem."""
    from otelres.config import ConfigError
    from otelres.health._checker import HealthChecker

    try:
        return HealthChecker(config=config, timeout=timeout)
    except ConfigError as exc:
        for problem in exc.problems:
            _error(problem)
        return None


def _fetch(url: str, checks: list[str], tags: list[str], timeout: float | None) -> HealthReport:
    """GET the service's /health (503 bodies included) and parse the report."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode, urlsplit, urlunsplit

    from otelres.health._report import HealthReport

    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/health"):
        path += "/health"
    query = urlencode([*(("check", c) for c in checks), *(("tag", t) for t in tags)])
    target = urlunsplit((parts.scheme or "http", parts.netloc, path, query, ""))
    try:
        with urllib.request.urlopen(target, timeout=timeout or 30.0) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        if exc.code == 400:  # the service refused our --check / --tag selection
            raise _Refused(f"{target}: {_error_text(body)}") from None
        if exc.code not in (200, 503):
            raise _Unreachable(f"{target} answered HTTP {exc.code}: {_snippet(body)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(f"cannot reach {target}: {reason}") from None
    try:
        return HealthReport.from_dict(json.loads(body))
    except ValueError as exc:
        raise _Unreachable(f"{target} did not answer with a health report: {exc}") from None


class _Unreachable(Exception):
    """The service could not be asked, or did not answer with a report: RED."""


class _Refused(Exception):
    """The service rejected the request (an unknown --check name): a usage error."""


def _error_text(body: bytes) -> str:
    """The ``error`` of a JSON error body, else the start of the body."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return _snippet(body)


def _report_or_red(fetch: Callable[[], HealthReport]) -> HealthReport:
    """The fetched report, or a one-check RED report saying why the service could not be asked."""
    from otelres.health._model import HealthResult, HealthStatus
    from otelres.health._report import HealthReport

    try:
        return fetch()
    except _Unreachable as exc:
        _error(str(exc))
        result = HealthResult("service", HealthStatus.RED, str(exc), error="unreachable")
        return HealthReport.of({"service": result})


def _snippet(body: bytes) -> str:
    """The start of an unexpected response body, on one line, for an error message."""
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:200]


# --------------------------------------------------------------------------- table
_COLOURS = {"green": "\x1b[32m", "yellow": "\x1b[33m", "red": "\x1b[31m"}
_SYMBOLS = {"green": "✔", "yellow": "▲", "red": "✖"}
_RESET = "\x1b[0m"


def render_table(report: HealthReport, stream: IO[str] | None = None) -> str:
    """The traffic-light table for *report*.

    Symbols and colour when *stream* is a terminal and ``NO_COLOR`` is not set; plain
    words otherwise, so piped output stays greppable.
    """
    fancy = stream is not None and stream.isatty()
    colour = fancy and not os.environ.get("NO_COLOR")
    symbols = fancy and _can_encode(stream, "".join(_SYMBOLS.values()))

    def label(status: str) -> str:
        text = status.upper()
        if symbols:
            text = f"{_SYMBOLS[status]} {text}"
        return text

    rows = [("STATUS", "CHECK", "TIME", "MESSAGE")]
    statuses = [""]
    for name, result in report.results.items():
        rows.append((label(result.status.value), name, _duration(result.duration), result.message))
        statuses.append(result.status.value)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row, status in zip(rows, statuses, strict=True):
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        if colour and status:
            cells[0] = f"{_COLOURS[status]}{cells[0]}{_RESET}"
        lines.append("  ".join([*cells, row[3]]).rstrip())
    overall = label(report.overall.value)
    if colour:
        overall = f"{_COLOURS[report.overall.value]}{overall}{_RESET}"
    count = len(report.results)
    lines.append("")
    lines.append(
        f"overall: {overall} ({count} check{'s' if count != 1 else ''} in "
        f"{_duration(report.duration)})"
    )
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    """A duration as people read it: milliseconds below a second, else seconds."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _can_encode(stream: Any, text: str) -> bool:
    """Whether *stream* can print *text* (a terminal set to ASCII cannot print the symbols)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# --------------------------------------------------------------------------- serve
def _serve(args: argparse.Namespace) -> int:
    """`otelres serve`: exporters, probes and the scheduled runner until Ctrl-C or SIGTERM
    (exit status 0).

    SIGTERM is how Kubernetes stops a pod: it ends the command as cleanly as Ctrl-C does.
    Telemetry is shut down last, so the final gauge values are flushed to the exporters.
    """
    import logging

    loaded = _load(args.config)
    if isinstance(loaded, int):
        return loaded
    # Exporters first, so the health gauges reach them (and /metrics has something to serve).
    telemetry = _telemetry(loaded)
    if isinstance(telemetry, int):
        return telemetry
    # Status changes are this command's log; configure() may already have set up logging.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _serve_probes(loaded, args)
    finally:
        if telemetry is not None:
            telemetry.shutdown()


def _telemetry(config: Config) -> Any:
    """``otelres.configure(config)`` when it names an exporter; the handle, None, or EXIT_USAGE."""
    settings = config.telemetry
    exporters = (*settings.traces_exporter, *settings.metrics_exporter, *settings.logs_exporter)
    if settings.sdk_disabled or all(name == "none" for name in exporters):
        return None
    from otelres.telemetry import configure

    try:
        return configure(config)
    except (OSError, ImportError, ValueError) as exc:
        _error(f"cannot set up telemetry from {config.source or 'the defaults'}: {exc}")
        return EXIT_USAGE


def _serve_probes(config: Config, args: argparse.Namespace) -> int:
    """Bind the probe server and serve until interrupted; a port in use is a usage error (3)."""
    checker = _checker(config, None)
    if checker is None:
        return EXIT_USAGE
    from otelres.health._runner import HealthRunner
    from otelres.health._server import HealthServer

    try:
        server = HealthServer(checker, host=args.host, port=args.port)
    except OSError as exc:
        settings = config.health_checks
        where = f"{args.host or settings.host}:{settings.port if args.port is None else args.port}"
        _error(f"cannot listen on {where}: {exc.strerror or exc}")
        return EXIT_USAGE
    from otelres.status_page import add_status_page

    add_status_page(server)
    runner = HealthRunner(checker) if config.health_checks.enabled else None
    endpoints = "/ /livez /readyz /health" + (" /metrics" if server.metrics_enabled else "")
    previous = _on_sigterm(_stop_serving)
    print(f"otelres: serving health probes on {server.url} ({endpoints})", file=sys.stderr)
    try:
        if runner is not None:
            # On the server's loop, so scheduled runs and probes share one loop: async checks
            # may keep loop-bound clients (aiohttp, async ccxt) between runs.
            server.loop.call_soon_threadsafe(runner.start)
        server.serve_forever()
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        if previous is not None:
            _on_sigterm(previous)
        if runner is not None:
            runner.stop()
        server.close()
    return 0


class _Terminated(Exception):
    """SIGTERM arrived while serving."""


def _stop_serving(signum: int, frame: object) -> None:
    raise _Terminated


def _on_sigterm(handler: Any) -> Any:
    """Install *handler* for SIGTERM and return the previous one (None off the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------- helpers
def _error(message: str) -> None:
    """Print *message* on stderr the way every otelres command reports errors."""
    print(f"otelres: error: {message}", file=sys.stderr)


