"""``otelres demo``: a trading bot on a local exchange through a scripted bad day, shown live."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from otelres._demo._bot import BotStats, trade
from otelres._demo._config import EXCHANGES, DemoOptions, demo_config, demo_config_path, scaled_scenario
from otelres._demo._display import Display, LiveTable, PlainLines, View
from otelres._demo._summary import build_summary, metric_totals, render_summary

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otelres.backup import BackupManager
    from otelres.config import Config
    from otelres.health import HealthChecker, HealthServer, HTTPRequest, HTTPResponse, StatusChange
    from otelres.resilience import BreakerTransition
    from otelres.status_page import StatusCollector
    from otelres.testing import ExchangeServer

__all__ = ["Demo", "missing_packages", "run"]

# The market each exchange's bot trades.
SYMBOLS = {"kraken": "BTC/USD", "binance": "BTC/USDT"}
# Seconds between two frames of the live table.
FRAME_SECONDS = 0.25
# Seconds between two blips (a single failed ticker request) in the calm phases.
BLIP_SECONDS = 1.5
# Where each venue's ticker lives on the local exchange, and the calm phases.
TICKER_PATHS = {"kraken": "/0/public/Ticker", "binance": "/api/v3/ticker"}
CALM_PHASES = ("healthy", "recovery")


def run(options: DemoOptions, out: IO[str] | None = None) -> int:
    """Run the demo to the end and return its exit status (0 when it ran through)."""
    from otelres.config import ConfigError

    stream = sys.stdout if out is None else out
    missing = missing_packages()
    if missing:
        print(
            f"error: otelres demo needs {', '.join(missing)}; install them with "
            "pip install 'otelres[ccxt,prometheus]' otelres-instrumentation-ccxt "
            "(make demo does)",
            file=sys.stderr,
        )
        return 1
    try:
        config = demo_config(options)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    return asyncio.run(Demo(config, options, stream).run())


# Import name -> the distribution a user installs to get it.
_NEEDS = {
    "ccxt": "ccxt",
    "aiohttp": "aiohttp",
    "otelres_instrumentation_ccxt": "otelres-instrumentation-ccxt",
    "opentelemetry.exporter.prometheus": "opentelemetry-exporter-prometheus",
    "prometheus_client": "prometheus-client",
}


def missing_packages() -> list[str]:
    """The distributions the demo needs that are not installed."""
    import importlib.util

    missing = []
    for module, distribution in _NEEDS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            missing.append(distribution)
    return missing


class _LogSink:
    """Where log lines go while the table owns the terminal: kept (bounded), shown on failure."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=50)
        self.count = 0

    def write(self, text: str) -> int:
        if text.strip():
            self.lines.append(text.rstrip("\n"))
            self.count += 1
        return len(text)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class _Parts:
    """What a running demo is made of, handed from set-up to :meth:`Demo._play`."""

    exchange: ExchangeServer
    clients: dict[str, Any]
    """Async ccxt clients by exchange id."""
    checker: HealthChecker
    collector: StatusCollector
    backups: BackupManager
    url: str
    """Base URL of the status page and probes."""
    metrics: InMemoryMetricReader | None
    """Reads the same metrics /metrics serves, for the summary."""


class Demo:
    """One run of the demo; :meth:`run` does it all and returns the exit status."""

    def __init__(self, config: Config, options: DemoOptions, out: IO[str]) -> None:
        self.config = config
        self.options = options
        self.out = out
        self.phases = scaled_scenario(options.duration)
        self.bots = [BotStats(name) for name in EXCHANGES]
        self.transitions: dict[str, Counter[tuple[str, str]]] = {n: Counter() for n in EXCHANGES}
        self.red_seen: list[str] = []
        self.served: Counter[str] = Counter()
        self.events: deque[tuple[float, str]] = deque(maxlen=40)
        self.started = time.monotonic()
        self._events_lock = threading.Lock()
        self._display: Display | None = None
        self.log_sink = _LogSink()

    # ------------------------------------------------------------------ events
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def event(self, text: str) -> None:
        """Note something worth seeing (a phase, a transition, a health change)."""
        at = self.elapsed()
        with self._events_lock:
            self.events.append((at, text))
        display = self._display
        if display is not None:
            display.event(at, text)

    def _on_transition(self, change: BreakerTransition) -> None:
        before, after = change.from_state.value, change.to_state.value
        with self._events_lock:
            self.transitions.setdefault(change.name, Counter())[(before, after)] += 1
        self.event(f"breaker {change.name}: {before} -> {after} ({change.reason})")

    def _on_health(self, change: StatusChange) -> None:
        if change.old is None and change.new.value == "green":
            return
        if change.new.value == "red" and change.name not in self.red_seen:
            self.red_seen.append(change.name)
        old = "-" if change.old is None else change.old.value.upper()
        self.event(f"health {change.name}: {old} -> {change.new.value.upper()} ({change.result.message})")

    # ------------------------------------------------------------------ the run
    async def run(self) -> int:
        from otelres_instrumentation_ccxt import CcxtInstrumentor

        from otelres.backup import BackupManager
        from otelres.status_page import StatusCollector, add_status_page
        from otelres.testing import ExchangeServer, exchange_client

        telemetry, memory = self._configure_telemetry()
        workdir = tempfile.mkdtemp(prefix="otelres-demo-")
        instrumentor = CcxtInstrumentor()
        exchange = ExchangeServer()
        server: HealthServer | None = None
        collector: StatusCollector | None = None
        try:
            exchange.start()
            instrumentor.instrument(safe_order_retry=True)
            guards = {name: CcxtInstrumentor.guard(name) for name in EXCHANGES}
            for guard in guards.values():
                if guard is not None and guard.breaker is not None:
                    guard.breaker.add_listener(self._on_transition)
            backups = BackupManager(workdir, settings=self.config.backup)
            backups.create_backup(self._state(), backup_type="demo")
            checker = self._checker(exchange, backups)
            collector = StatusCollector(
                checker,
                title="otelres demo",
                retries=lambda: [g.read_retry for g in guards.values()
                                 if g is not None and g.read_retry is not None],
                extra=lambda: {
                    "phase": exchange.phase or "finished",
                    "elapsed": f"{min(self.elapsed(), self.options.duration):.0f} / "
                               f"{self.options.duration:.0f} s",
                },
                rate_window=max(2.0, self.options.duration / 10),
            )
            server = self._server(checker)
            add_status_page(server, collector, check_max_age=None)
            server.start()
            self._announce(server.url)
            async with AsyncExitStack() as stack:
                clients = {}
                for name in EXCHANGES:
                    client = exchange_client(exchange, name, flavour="async")
                    stack.push_async_callback(client.close)
                    clients[name] = client
                    await client.load_markets()
                return await self._play(
                    _Parts(exchange, clients, checker, collector, backups, server.url, memory)
                )
        except Exception:
            # The log lines the table kept aside explain what went wrong.
            for line in self.log_sink.lines:
                print(line, file=sys.stderr)
            raise
        finally:
            if self._display is not None:
                self._display.close()
                self._display = None

            def close_all() -> None:
                if collector is not None:
                    collector.close()
                if server is not None:
                    server.close()
                exchange.stop()
                if instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.uninstrument()
                telemetry.shutdown()
                shutil.rmtree(workdir, ignore_errors=True)

            # These block (threads joined, telemetry flushed), and closing the probe
            # server's own loop must not happen on a thread whose loop is running.
            await asyncio.to_thread(close_all)

    async def _play(self, parts: _Parts) -> int:
        """Play the scenario with the bot trading, show it, then summarise; returns 0."""
        from otelres.health import HealthRunner

        exchange, checker, collector, url = parts.exchange, parts.checker, parts.collector, parts.url

        live = self.options.live if self.options.live is not None else _is_terminal(self.out)
        self._display = LiveTable(self.out) if live else PlainLines(self.out)
        self.started = time.monotonic()
        exchange.play(self.phases)
        runner = HealthRunner(checker, interval=self.config.health_checks.interval_seconds)
        runner.start()
        stop = asyncio.Event()
        bots = [
            asyncio.create_task(trade(parts.clients[bot.exchange], SYMBOLS[bot.exchange], bot, stop))
            for bot in self.bots
        ]
        phase = None
        next_backup = self.options.duration / 3
        next_blip, blips = BLIP_SECONDS, 0
        try:
            while self.elapsed() < self.options.duration:
                current = exchange.phase
                if current is not None and current != phase:
                    phase = current
                    self.event(f"phase: {current}")
                if self.elapsed() >= next_blip:
                    next_blip += BLIP_SECONDS
                    self._blip(exchange, blips)
                    blips += 1
                if self.elapsed() >= next_backup:
                    next_backup += self.options.duration / 3
                    await asyncio.to_thread(parts.backups.create_backup, self._state(),
                                            backup_type="demo")
                self._display.update(self._view(url, collector.snapshot()))
                await asyncio.sleep(FRAME_SECONDS)
        finally:
            stop.set()
            await asyncio.gather(*bots, return_exceptions=True)
            await runner.aclose()
        elapsed = self.elapsed()
        exchange.stop_scenario()
        final = await checker.run(use_cache=False)
        snapshot = collector.snapshot()
        self._display.update(self._view(url, snapshot))
        self._display.close()
        self._display = None
        retry_attempts = None
        if parts.metrics is not None:
            points = metric_totals(parts.metrics.get_metrics_data(), ["otelres.retry.attempts"])
            retry_attempts = sum(value for _, value in points["otelres.retry.attempts"])
        summary = build_summary(
            elapsed=elapsed,
            phases=[p.name for p in self.phases],
            bots=self.bots,
            snapshot=snapshot,
            transitions=self.transitions,
            final_health={
                "overall": final.overall.value,
                "checks": {name: r.status.value for name, r in final.results.items()},
            },
            red_seen=self.red_seen,
            served=dict(self.served),
            retry_attempts=retry_attempts,
            exporter=self.options.exporter,
            url=url,
        )
        for line in render_summary(summary):
            print(line, file=self.out)
        self.out.flush()
        if self.options.summary_json:
            await asyncio.to_thread(
                Path(self.options.summary_json).write_text, json.dumps(summary, indent=2), "utf-8"
            )
        return 0

    # ------------------------------------------------------------------ parts
    def _blip(self, exchange: Any, count: int) -> None:
        """In a calm phase, fail the next ticker request of one venue once (a 502).

        One failure is what retries are for: the call succeeds on its next attempt and
        the breaker, which needs several failures in a row, stays closed.
        """
        from otelres.resilience import all_breakers
        from otelres.testing import Fault

        if exchange.phase not in CALM_PHASES:
            return
        venue = EXCHANGES[count % len(EXCHANGES)]
        breaker = all_breakers().get(venue)
        if breaker is not None and breaker.state.value != "closed":
            return
        exchange.inject(Fault("http", status=502, venue=venue, path=TICKER_PATHS[venue], times=1))

    def _configure_telemetry(self) -> tuple[Any, Any]:
        """Set up the SDK: /metrics through prometheus_client, an in-memory reader for the
        summary, and OTLP when asked."""
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from otelres.monitoring import setup_logging
        from otelres.telemetry import configure

        memory = InMemoryMetricReader()
        telemetry = configure(self.config, metric_readers=[PrometheusMetricReader(), memory])
        # The table owns the terminal: log lines are kept aside (and shown if the demo fails).
        setup_logging(
            self.config.monitoring,
            service_name=self.config.telemetry.service_name,
            logger_provider=telemetry.logger_provider,
            stream=self.log_sink,  # type: ignore[arg-type]
        )
        return telemetry, memory

    def _checker(self, exchange: Any, backups: Any) -> HealthChecker:
        from otelres.health import HealthChecker
        from otelres.health.checks import (
            BackupFreshnessCheck,
            CircuitBreakerCheck,
            ExchangeCheck,
            RateLimiterCheck,
            TelemetryExportCheck,
        )

        settings = self.config.health_checks
        checker = HealthChecker(
            [
                CircuitBreakerCheck(EXCHANGES),
                RateLimiterCheck(
                    max_wait_ratio=settings.limiter_max_wait_ratio,
                    max_rejections=settings.limiter_max_rejections,
                ),
                ExchangeCheck(
                    [exchange.client(name) for name in EXCHANGES],
                    latency_warning=settings.exchange_latency_warning_seconds,
                ),
                BackupFreshnessCheck(backups, interval_hours=self.config.backup.interval_hours),
                TelemetryExportCheck(),
            ],
            config=self.config,
        )
        checker.on_status_change(self._on_health)
        return checker

    def _server(self, checker: HealthChecker) -> HealthServer:
        """The probe server (status page, /health, /metrics) on the asked or configured port.

        Without ``--port``, a taken configured port falls back to a free one.
        """
        from otelres.health import HealthServer

        demo = self

        class CountingServer(HealthServer):
            def dispatch(self, request: HTTPRequest) -> HTTPResponse:
                demo.served[request.path] += 1
                return super().dispatch(request)

        settings = self.config.health_checks
        port = settings.port if self.options.port is None else self.options.port
        try:
            return CountingServer(checker, host=settings.host, port=port, metrics=True)
        except OSError as exc:
            if self.options.port is not None or exc.errno != errno.EADDRINUSE:
                raise
            return CountingServer(checker, host=settings.host, port=0, metrics=True)

    def _announce(self, url: str) -> None:
        source = self.options.config or f"{demo_config_path()} (demo settings)"
        breaker = self.config.resilience.breaker("kraken")
        lines = [
            f"otelres demo: a trading bot on a local Kraken + Binance for {self.options.duration:.0f} s: "
            + " -> ".join(p.name for p in self.phases),
            f"  status page   {url}/   (also {url}/health and {url}/metrics)",
            f"  config        {source}: breakers open after {breaker.threshold} failures "
            f"for {breaker.timeout_seconds:g} s",
        ]
        if self.options.exporter == "otlp":
            endpoint = self.config.telemetry.otlp_endpoint or "the OTEL_EXPORTER_OTLP_* default"
            lines.append(f"  telemetry     OTLP ({self.config.telemetry.otlp_protocol}) to {endpoint}")
        for line in lines:
            print(line, file=self.out)
        print(file=self.out)
        self.out.flush()

    def _view(self, url: str, snapshot: dict[str, Any]) -> View:
        names = [p.name for p in self.phases]
        phase = str(snapshot.get("extra", {}).get("phase", "finished"))
        number = names.index(phase) + 1 if phase in names else len(names)
        with self._events_lock:
            events: Sequence[tuple[float, str]] = list(self.events)
        return View(
            elapsed=min(self.elapsed(), self.options.duration),
            duration=self.options.duration,
            phase=phase,
            phase_number=number,
            phases=len(names),
            url=url,
            snapshot=snapshot,
            bots=self.bots,
            events=events,
        )

    def _state(self) -> dict[str, Any]:
        """The bot's state worth backing up: what it traded and the last prices it saw."""
        return {"bots": {b.exchange: {**b.to_dict(), "last_price": b.last_price} for b in self.bots}}


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
