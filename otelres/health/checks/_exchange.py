"""Built-in check: can we reach the exchange, and is it open for business? (needs ``ccxt``)"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from otelres.health._check import HealthCheck
from otelres.health._model import HealthResult, HealthStatus
from otelres.health._threads import in_daemon_thread

__all__ = ["ExchangeCheck"]

_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


class ExchangeCheck(HealthCheck):
    """Probe crypto exchanges through ccxt: RED on maintenance or error, YELLOW when slow.

    *exchanges* are ccxt exchange objects (sync ``ccxt.kraken(...)`` or async
    ``ccxt.async_support.kraken(...)``) or exchange ids such as ``"kraken"``, for which a
    sync client is created on first use with *options* (ccxt constructor options, e.g.
    ``{"urls": {"api": {"public": "http://127.0.0.1:8000"}}}``; ccxt's client-side rate
    limiting is off and its request timeout is the probe's deadline unless the options say
    otherwise). ccxt is imported only then, so the check costs nothing when unused.

    Each exchange is asked ``fetch_status()`` when it supports it, else ``fetch_time()``,
    all at once. Per exchange: a status other than ``ok`` (``maintenance``, ``shutdown``,
    ``error``) or any exception is RED; a round trip slower than *latency_warning*
    seconds is YELLOW (for a client you pass in, that includes ccxt's own throttling wait:
    the delay your calls on that client see). ``details["exchanges"]`` holds each one's
    status, latency (s) and error. Error texts have URL query strings removed, so no signed
    parameter can leak.

    Each exchange gets *probe_timeout* seconds (default: 90 % of the check's timeout, its
    own ``timeout`` or ``[health_checks] timeout_seconds``), so one exchange that hangs is
    reported RED by name while the others still report, instead of the whole check timing out.
    """

    def __init__(
        self,
        exchanges: Iterable[Any] | Any,
        *,
        latency_warning: float = 1.0,
        options: Mapping[str, Any] | None = None,
        name: str = "exchange",
        tags: Iterable[str] = ("exchange", "readiness"),
        timeout: float | None = None,
        probe_timeout: float | None = None,
    ) -> None:
        if isinstance(exchanges, str) or not isinstance(exchanges, Iterable):
            exchanges = [exchanges]
        self.exchanges: list[Any] = list(exchanges)
        if not self.exchanges:
            raise ValueError("ExchangeCheck needs at least one exchange")
        if latency_warning <= 0:
            raise ValueError(f"latency_warning must be > 0, got {latency_warning!r}")
        self.latency_warning = latency_warning
        self.options = dict(options or {})
        self.name = name
        self.tags = frozenset(tags)
        self.timeout = timeout
        if probe_timeout is not None and probe_timeout <= 0:
            raise ValueError(f"probe_timeout must be > 0, got {probe_timeout!r}")
        self.probe_timeout = probe_timeout
        self._lock = threading.Lock()

    async def check(self) -> HealthResult:
        """Probe every exchange at once; the worst exchange decides the status."""
        limit = self._probe_limit()
        probes = await asyncio.gather(
            *(self._probe(index, limit) for index in range(len(self.exchanges)))
        )
        report = {exchange_id: data for exchange_id, _, data in probes}
        status = HealthStatus.worst(status for _, status, _ in probes)
        failing = [
            f"{exchange_id}: {data.get('error') or data.get('status')}"
            if status is HealthStatus.RED
            else f"{exchange_id}: slow ({data['latency_seconds']:.3g} s)"
            for exchange_id, status, data in probes
            if status is not HealthStatus.GREEN
        ]
        if failing:
            message = "; ".join(failing)
        else:
            slowest = max(data.get("latency_seconds") or 0.0 for _, _, data in probes)
            message = f"{len(probes)} reachable, slowest {slowest * 1000:.0f} ms"
        return HealthResult(
            self.name,
            status,
            message,
            {"exchanges": report, "latency_warning_seconds": self.latency_warning},
        )

    def _probe_limit(self) -> float:
        """Seconds each exchange gets: *probe_timeout*, else 90 % of the check's timeout."""
        if self.probe_timeout is not None:
            return self.probe_timeout
        timeout = self.timeout
        if timeout is None:
            from otelres.config import current

            timeout = current().health_checks.timeout_seconds
        return 0.9 * timeout

    async def _probe(self, index: int, limit: float) -> tuple[str, HealthStatus, dict[str, Any]]:
        """(exchange id, status, details) of one exchange within *limit* seconds; never raises."""
        started = began = time.perf_counter()
        exchange: Any = None
        try:
            exchange = await in_daemon_thread(lambda: self._client(index))
            started = time.perf_counter()  # latency of the exchange, not of importing ccxt
            method = exchange.fetch_status if _supports(exchange, "fetchStatus") else exchange.fetch_time
            call = method() if inspect.iscoroutinefunction(method) else in_daemon_thread(
                method, name="otelres-health-exchange"
            )
            try:
                answer = await asyncio.wait_for(call, max(0.0, limit - (time.perf_counter() - began)))
            except asyncio.TimeoutError:
                raise TimeoutError(f"no answer within {limit:.3g} s") from None
        except Exception as exc:
            data = {
                "status": "error",
                "latency_seconds": round(time.perf_counter() - started, 4),
                "error": f"{type(exc).__name__}: {_scrub(str(exc))}",
            }
            if _is_maintenance(exc):
                data["status"] = "maintenance"
            return _exchange_id(exchange, self.exchanges[index]), HealthStatus.RED, data
        latency = time.perf_counter() - started
        state = str(answer.get("status") or "ok") if isinstance(answer, Mapping) else "ok"
        data = {"status": state, "latency_seconds": round(latency, 4), "error": None}
        if state != "ok":
            status = HealthStatus.RED
        elif latency > self.latency_warning:
            status = HealthStatus.YELLOW
        else:
            status = HealthStatus.GREEN
        return _exchange_id(exchange, exchange), status, data

    def _client(self, index: int) -> Any:
        """The ccxt object for exchange *index*, created (once) from its id when needed."""
        with self._lock:
            exchange = self.exchanges[index]
            if isinstance(exchange, str):
                import ccxt

                factory = getattr(ccxt, exchange, None)
                if factory is None:
                    raise ValueError(f"ccxt has no exchange called {exchange!r}")
                options = dict(self.options)
                # One request per run: ccxt's throttle would only add its own wait (a
                # second of Kraken's rateLimit) to the latency this check measures.
                options.setdefault("enableRateLimit", False)
                # ccxt's own request timeout (ms) at the probe's deadline, so a request the
                # probe gave up on does not keep a thread busy for ccxt's default 10 s.
                options.setdefault("timeout", max(1, int(self._probe_limit() * 1000)))
                exchange = factory(options)
                self.exchanges[index] = exchange
            return exchange


def _supports(exchange: Any, feature: str) -> bool:
    """Whether the ccxt client declares *feature* in its ``has`` table."""
    has = getattr(exchange, "has", None) or {}
    return bool(has.get(feature))


def _exchange_id(exchange: Any, fallback: Any) -> str:
    """The ccxt id of the exchange (or of what was given, when the client could not be built)."""
    return str(getattr(exchange, "id", None) or getattr(fallback, "id", None) or fallback)


def _is_maintenance(exc: Exception) -> bool:
    """Whether *exc* is ccxt's ``OnMaintenance`` (by name: ccxt may not be imported here)."""
    return any(cls.__name__ == "OnMaintenance" for cls in type(exc).__mro__)


def _scrub(text: str) -> str:
    """Drop query strings from URLs in *text* (signed requests carry secrets there) and cap it."""
    text = _QUERY.sub(r"\1?<redacted>", text)
    return text if len(text) <= 300 else text[:297] + "..."
