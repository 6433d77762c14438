"""``otelres demo``: see otelres in action in under a minute, with nothing else installed.

A local Kraken + Binance exchange (:class:`otelres.testing.ExchangeServer`) plays a
scripted bad day: healthy, a 503 storm, a 429 burst, maintenance, recovery. A small
trading bot trades through real async ccxt clients, instrumented by
``otelres-instrumentation-ccxt`` with each exchange's breaker, retries and rate limiter
from the configuration. The terminal shows it live, the status page, ``/health`` and
``/metrics`` are served on 127.0.0.1, and a summary closes the run. See docs/DEMO.md.

Only the CLI imports this package; the heavy parts load when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from otelres._cli import port_number, seconds

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add ``demo`` to the ``otelres`` command."""
    from otelres._demo._config import DEFAULT_DURATION, MIN_DURATION

    demo = subparsers.add_parser(
        "demo",
        help="watch a trading bot ride out a bad day on a local exchange (about 40 s)",
        description=(
            "Run a small trading bot against a local Kraken + Binance exchange that plays "
            "a scripted bad day (healthy, 503 storm, 429 burst, maintenance, recovery), "
            "with breakers, retries and rate limits from the configuration. Shows a live "
            "table, serves the status page, /health and /metrics on 127.0.0.1, and ends "
            "with a summary. Nothing outside 127.0.0.1 is contacted unless --exporter otlp "
            "names a Collector."
        ),
    )
    demo.add_argument(
        "--duration",
        type=seconds(MIN_DURATION, why=" to show every phase"),
        default=DEFAULT_DURATION,
        metavar="SECONDS",
        help=f"length of the run; the phases scale with it (default {DEFAULT_DURATION:g}, "
             f"at least {MIN_DURATION:g})",
    )
    demo.add_argument(
        "--port", type=port_number, metavar="PORT",
        help="port of the status page, /health and /metrics (default: [health_checks] port "
             "of the configuration, 8080, or a free port when that one is taken)",
    )
    demo.add_argument(
        "--exporter", choices=("none", "otlp"), default="none",
        help="also send traces, metrics and logs over OTLP to a Collector (default none)",
    )
    demo.add_argument(
        "--otlp-endpoint", metavar="URL",
        help="Collector endpoint for --exporter otlp (default: OTEL_EXPORTER_OTLP_ENDPOINT, "
             "else localhost:4317 for grpc / localhost:4318 for http/protobuf)",
    )
    demo.add_argument(
        "--otlp-protocol", choices=("grpc", "http/protobuf"),
        help="OTLP protocol for --exporter otlp (default: the configuration's, grpc)",
    )
    demo.add_argument(
        "--config", metavar="PATH",
        help="use this configuration file instead of the demo's own settings",
    )
    demo.add_argument(
        "--summary-json", metavar="PATH", help="also write the closing summary as JSON to PATH",
    )
    display = demo.add_mutually_exclusive_group()
    display.add_argument(
        "--live", dest="live", action="store_true", default=None,
        help="redraw a table in place (default when standard output is a terminal)",
    )
    display.add_argument(
        "--plain", dest="live", action="store_false",
        help="print plain status lines instead of a live table",
    )
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from otelres._demo._config import DemoOptions
    from otelres._demo._runner import run

    return run(
        DemoOptions(
            duration=args.duration,
            port=args.port,
            config=args.config,
            exporter=args.exporter,
            otlp_endpoint=args.otlp_endpoint,
            otlp_protocol=args.otlp_protocol,
            summary_json=args.summary_json,
            live=args.live,
        )
    )


