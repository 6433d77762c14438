"""A real otelres process for the stack test: guarded calls, health checks and a backup.

Run by ``tests/stack/test_prometheus_stack.py`` as a subprocess::

    python tests/stack/stack_app.py --port 9464 --backup-dir /tmp/x --service-name svc

``otelres.configure()`` starts the Prometheus exporter on 127.0.0.1:PORT; then the process
keeps every component busy, twice a second, until it is terminated:

* breaker ``exchange-flappy`` cycles closed -> open -> half-open -> closed (its clock jumps
  past the reset timeout), so it flaps;
* breaker ``exchange-down`` opened once and stays open; callers are rejected;
* breaker ``exchange-windowed`` judges a window of calls: a third fail, a third are slow;
* retry ``exchange-retry``: every call fails once, then succeeds (a retry storm);
* limiter ``exchange-public`` (wait mode) makes every second caller wait; limiter
  ``exchange-private`` (reject mode) turns most callers away;
* bulkhead ``orders``: both slots held by parked threads, so further calls are rejected;
* timeout ``exchange-orders`` gives up on a call that sleeps past it; fallback
  ``exchange-ticker`` answers for a failing call;
* breaker and limiter ``exchange-shared`` keep their state in a Redis nobody runs
  (``--redis-url``): fail-open, so the calls go on, decided without Redis;
* ccxt clients instrumented by ``otelres-instrumentation-ccxt`` call the local exchange:
  kraken answers, binance's ticker answers 503 (a failing exchange, never retried and
  never tripping its breaker here, so that every round adds a failure);
* health checks ``exchange`` (RED), ``disk`` (YELLOW) and ``database`` (GREEN);
* a ``daily`` backup whose manifest says it was written 30 hours ago (stale), and an
  ``hourly`` one whose entry file was cut short afterwards (damaged); every round a
  ``snapshot`` backup is written (dated 30 hours back too) and a ``daily`` one fails
  (the file it should copy does not exist).

It prints ``READY http://127.0.0.1:PORT/metrics`` once everything has run once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

import ccxt
from otelres_instrumentation_ccxt import CcxtInstrumentor

import otelres
from otelres.backup import BackupError, BackupManager
from otelres.config import config_from_dict
from otelres.health import HealthChecker, HealthResult, health_check
from otelres.resilience import (
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerOpenError,
    Fallback,
    RateLimiter,
    RateLimitExceededError,
    RedisBreakerStorage,
    RedisConnection,
    RedisTokenBucket,
    Retry,
    Timeout,
)
from otelres.testing import ExchangeServer, Fault

STALE_BY = timedelta(hours=30)
RESET_TIMEOUT = 30.0


class ExchangeDown(ConnectionError):
    """What the fake exchange raises."""


def fail() -> NoReturn:
    raise ExchangeDown("exchange unreachable")


def ok() -> str:
    return "ok"


class Scenario:
    """Every component of the stack test and one round of calls through them."""

    def __init__(self, backup_dir: str, redis_url: str) -> None:
        self.flappy_now = [0.0]
        self.flappy = CircuitBreaker(
            "exchange-flappy",
            failure_threshold=1,
            reset_timeout=RESET_TIMEOUT,
            success_threshold=1,
            clock=lambda: self.flappy_now[0],
        )
        self.down = CircuitBreaker("exchange-down", failure_threshold=1, reset_timeout=3600)
        self.windowed = CircuitBreaker(
            "exchange-windowed",
            failure_threshold=1000,
            failure_rate_threshold=0.9,
            slow_call_duration=0.005,
            slow_call_rate_threshold=1.0,
            window_type="count",
            window_size=30,
            minimum_calls=3,
        )
        self._attempts = 0
        self.retry = Retry("exchange-retry", max_attempts=3, sleep=lambda seconds: None)
        self.public = RateLimiter("exchange-public", rate=20, capacity=1, mode="wait")
        self.private = RateLimiter("exchange-private", rate=0.5, capacity=1, mode="reject")
        self.bulkhead = Bulkhead("orders", max_concurrent=2)
        self.timeout = Timeout("exchange-orders", seconds=0.005)
        self.fallback = Fallback("exchange-ticker", value={"last": None})
        absent = RedisConnection(redis_url, fail_mode="open", socket_timeout=0.1, connect_timeout=0.1)
        self.shared = CircuitBreaker(
            "exchange-shared", failure_threshold=5, storage=RedisBreakerStorage("exchange-shared", absent)
        )
        self.shared_limiter = RateLimiter(
            "exchange-shared",
            rate=100,
            backend=RedisTokenBucket("exchange-shared", absent, rate=100, capacity=100),
        )
        self.release = threading.Event()
        self.exchange = ExchangeServer().start()
        CcxtInstrumentor().instrument()
        self.kraken = self.exchange.client("kraken")
        self.binance = self.exchange.client("binance")
        self.checker = HealthChecker(
            [
                health_check("exchange", register=False)(self.exchange_check),
                health_check("disk", register=False)(self.disk_check),
                health_check("database", register=False)(self.database_check),
            ],
            failures_before_red=1,
            successes_before_green=1,
            cache_ttl=0,
            cache_ttl_failing=0,
        )
        self.backup_dir = Path(backup_dir)
        self.backups = BackupManager(backup_dir, clock=lambda: datetime.now(timezone.utc) - STALE_BY)

    # ------------------------------------------------------------------ health checks
    @staticmethod
    def exchange_check() -> HealthResult:
        return HealthResult.red("exchange unreachable")

    @staticmethod
    def disk_check() -> HealthResult:
        return HealthResult.yellow("disk 91 % full")

    @staticmethod
    def database_check() -> HealthResult:
        return HealthResult.green()

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        """Open the down breaker, fill the bulkhead, write the stale backup."""
        try:
            self.down.call(fail)
        except ExchangeDown:
            pass
        for _ in range(self.bulkhead.max_concurrent):
            threading.Thread(target=self.bulkhead.call, args=(self.release.wait,), daemon=True).start()
        deadline = time.monotonic() + 10
        while self.bulkhead._active < self.bulkhead.max_concurrent and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kraken.load_markets()
        self.binance.load_markets()
        self.exchange.inject(Fault("http", status=503, venue="binance", path="/api/v3/ticker"))
        self.backups.create_backup({"portfolio": {"BTC": 0.5}}, backup_type="daily")
        damaged = self.backups.create_backup({"orders": {"open": 3}}, backup_type="hourly")
        for entry in (self.backup_dir / damaged).glob("e*"):
            entry.write_bytes(entry.read_bytes()[:5])

    # ------------------------------------------------------------------ one round
    def round(self) -> None:
        """One call through every component."""
        self.flap()
        self.windowed.call(ok)
        self.windowed.call(time.sleep, 0.02)
        expect(ExchangeDown, self.windowed.call, fail)
        expect(CircuitBreakerOpenError, self.down.call, ok)
        # Several calls a round: the storm alert also wants real traffic (>= 0.1 calls/s
        # averaged over its 5-minute window, of which the test has only seconds).
        for _ in range(5):
            self.retry.call(self.fails_once)
        self.public.call(ok)
        self.public.call(ok)
        for _ in range(3):
            expect(RateLimitExceededError, self.private.call, ok)
        expect(BulkheadFullError, self.bulkhead.call, ok)
        expect(CallTimeoutError, self.timeout.call, time.sleep, 0.05)
        self.fallback.call(fail)
        self.shared_limiter.call(self.shared.call, ok)
        self.kraken.fetch_ticker("BTC/USD")
        expect(ccxt.ExchangeNotAvailable, self.binance.fetch_ticker, "BTC/USDT")
        self.checker.run_sync()
        self.backups.create_backup({"positions": {"BTC": 0.5}}, backup_type="snapshot")
        expect(
            BackupError,
            self.backups.create_backup,
            backup_type="daily",
            files=[self.backup_dir / "missing.db"],
        )

    def flap(self) -> None:
        """closed -> open (a failure), -> half-open (the reset timeout elapses), -> closed."""
        expect(ExchangeDown, self.flappy.call, fail)
        self.flappy_now[0] += RESET_TIMEOUT + 1
        for _ in range(5):
            self.flappy.call(ok)
            if self.flappy.state.value == "closed":
                break

    def fails_once(self) -> str:
        self._attempts += 1
        if self._attempts % 2:
            raise ExchangeDown("first attempt fails")
        return "ok"


def expect(error: type[BaseException], fn: Any, *args: Any, **kwargs: Any) -> None:
    """Call *fn*; *error* is part of the scenario and swallowed, anything else is not."""
    try:
        fn(*args, **kwargs)
    except error:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backup-dir", required=True)
    parser.add_argument("--service-name", required=True)
    parser.add_argument("--redis-url", required=True, help="where no Redis answers")
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    telemetry = otelres.configure(
        config_from_dict(
            {
                "telemetry": {
                    "service_name": args.service_name,
                    "metrics_exporter": ["prometheus"],
                    "prometheus_host": "127.0.0.1",
                    "prometheus_port": args.port,
                },
                # binance keeps failing: no retries (no back-off sleeps in a round), and a
                # breaker that never opens (so failures, not rejections, keep coming).
                "resilience": {
                    "circuit_breaker": {"binance": {"threshold": 1_000_000}},
                    "retry": {"binance": {"max_attempts": 1}},
                },
            }
        )
    )
    scenario = Scenario(args.backup_dir, args.redis_url)
    try:
        scenario.start()
        scenario.round()
        print(f"READY {telemetry.prometheus_url}", flush=True)
        while True:
            time.sleep(args.interval)
            scenario.round()
    finally:
        scenario.release.set()
        scenario.exchange.stop()
        telemetry.shutdown()


if __name__ == "__main__":
    main()
