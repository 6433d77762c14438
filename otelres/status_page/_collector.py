"""What the status page shows, gathered from live components: :class:`StatusCollector`."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from otelres.health._model import HealthStatus

if TYPE_CHECKING:
    from otelres.health import HealthChecker, HealthResult
    from otelres.resilience import BreakerTransition, CircuitBreaker, RateLimiter, Retry

__all__ = ["SCHEMA_VERSION", "StatusCollector"]

#: Version of the JSON document :meth:`StatusCollector.snapshot` returns.
SCHEMA_VERSION = 1

# Breaker state -> the colour the page and the terminal table give it.
_BREAKER_COLOUR = {
    "closed": "green",
    "half_open": "yellow",
    "open": "red",
    "forced_open": "red",
    "disabled": "grey",
}


class StatusCollector:
    """Gathers breakers, rate limiters, retries, health and backup freshness into one document.

    The status page polls :meth:`snapshot` (as JSON from ``/api/status``); the demo's
    terminal table reads it too, so both always agree.

    *breakers* and *limiters* are functions returning the components to show (default:
    every breaker of :func:`otelres.resilience.all_breakers` and every limiter of
    :func:`otelres.resilience.all_limiters`, looked up at each snapshot, so components
    created later appear on their own). *retries* returns :class:`~otelres.resilience.Retry`
    objects to show (none by default: retries are not registered process-wide).
    *checker* supplies the health lights and their history; a check that is a
    :class:`~otelres.health.BackupFreshnessCheck` also fills the backup panel.
    *extra* returns a small mapping of labels shown in the page header (the demo puts its
    phase there). *transitions_kept* is how many recent transitions per breaker are kept.

    A breaker's ``failure_rate`` is its sliding window's rate when it has one (a
    ``failure_rate_threshold``), else failures over decided calls in the last
    *rate_window* seconds, measured between snapshots.

    Transitions are recorded by a listener the collector adds to each breaker the first
    time it sees it; earlier transitions are not known.
    """

    def __init__(
        self,
        checker: HealthChecker | None = None,
        *,
        title: str = "otelres status",
        breakers: Callable[[], Iterable[CircuitBreaker]] | None = None,
        limiters: Callable[[], Iterable[RateLimiter]] | None = None,
        retries: Callable[[], Iterable[Retry]] | None = None,
        extra: Callable[[], Mapping[str, Any]] | None = None,
        transitions_kept: int = 10,
        rate_window: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if transitions_kept < 1:
            raise ValueError(f"transitions_kept must be >= 1, got {transitions_kept!r}")
        if not rate_window > 0:
            raise ValueError(f"rate_window must be > 0 seconds, got {rate_window!r}")
        self.checker = checker
        self.title = title
        self._breakers = breakers or _all_breakers
        self._limiters = limiters or _all_limiters
        self._retries = retries
        self._extra = extra
        self._kept = transitions_kept
        self._rate_window = float(rate_window)
        self._clock = clock
        self._lock = threading.Lock()
        self._transitions: dict[str, deque[dict[str, Any]]] = {}
        self._transition_totals: dict[str, int] = {}
        self._watched: dict[int, Any] = {}
        self._samples: dict[str, deque[tuple[float, int, int]]] = {}

    # ------------------------------------------------------------------ breakers
    def watch(self, breaker: CircuitBreaker) -> None:
        """Start recording *breaker*'s transitions (done for every breaker a snapshot sees)."""
        with self._lock:
            if id(breaker) in self._watched:
                return
            # Keep a reference: a listener keyed by id() must not outlive its breaker's id.
            self._watched[id(breaker)] = breaker
            self._transitions.setdefault(breaker.name, deque(maxlen=self._kept))
        breaker.add_listener(self._on_transition)

    def close(self) -> None:
        """Remove the listeners this collector added to breakers."""
        with self._lock:
            watched, self._watched = list(self._watched.values()), {}
        for breaker in watched:
            try:
                breaker.remove_listener(self._on_transition)
            except ValueError:
                pass

    def transitions(self, name: str) -> list[dict[str, Any]]:
        """The recent transitions of breaker *name*, oldest first."""
        with self._lock:
            return list(self._transitions.get(name, ()))

    def transition_totals(self) -> dict[str, int]:
        """Transitions seen per breaker since it was first watched."""
        with self._lock:
            return dict(self._transition_totals)

    def _on_transition(self, change: BreakerTransition) -> None:
        record = {
            "at": self._clock(),
            "from": change.from_state.value,
            "to": change.to_state.value,
            "reason": change.reason,
        }
        with self._lock:
            self._transitions.setdefault(change.name, deque(maxlen=self._kept)).append(record)
            self._transition_totals[change.name] = self._transition_totals.get(change.name, 0) + 1

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """The whole status as plain JSON-ready data (the ``/api/status`` document).

        ``{"schema", "title", "generated_at", "overall", "extra", "breakers", "limiters",
        "retries", "health", "backup"}``; ``overall`` is the health status, or the worst
        breaker colour mapped to a status when there is no checker.
        """
        breakers = [self._breaker(b) for b in sorted(self._breakers(), key=lambda b: b.name)]
        limiters = [self._limiter(lim) for lim in sorted(self._limiters(), key=lambda x: x.name)]
        retries = [] if self._retries is None else [self._retry(r) for r in self._retries()]
        health = self._health()
        if health is not None:
            overall = health["overall"]
        else:
            overall = HealthStatus.worst(
                HealthStatus.RED if b["colour"] == "red"
                else HealthStatus.YELLOW if b["colour"] == "yellow" else HealthStatus.GREEN
                for b in breakers
            ).value
        extra: dict[str, Any] = {}
        if self._extra is not None:
            extra = {str(k): v for k, v in self._extra().items()}
        return {
            "schema": SCHEMA_VERSION,
            "title": self.title,
            "generated_at": self._clock(),
            "overall": overall,
            "extra": extra,
            "breakers": breakers,
            "limiters": limiters,
            "retries": retries,
            "health": health,
            "backup": self._backup(),
        }

    def _breaker(self, breaker: CircuitBreaker) -> dict[str, Any]:
        self.watch(breaker)
        state = breaker.get_state()
        metrics = state["metrics"]
        return {
            "name": breaker.name,
            "state": state["state"],
            "colour": _BREAKER_COLOUR.get(state["state"], "yellow"),
            "retry_after": _number(state["retry_after"]),
            "failure_threshold": breaker.failure_threshold,
            "reset_timeout": breaker.reset_timeout,
            "calls": metrics["total_calls"],
            "successes": metrics["success_calls"],
            "failures": metrics["failure_calls"],
            "rejected": metrics["rejected_calls"],
            "consecutive_failures": metrics["consecutive_failures"],
            "failure_rate": self._failure_rate(breaker.name, metrics),
            "transitions": self.transitions(breaker.name),
            "transition_count": self.transition_totals().get(breaker.name, 0),
        }

    def _failure_rate(self, name: str, metrics: Mapping[str, Any]) -> float:
        """The window's rate when the breaker keeps one, else the recent rate between snapshots."""
        now = self._clock()
        successes, failures = int(metrics["success_calls"]), int(metrics["failure_calls"])
        with self._lock:
            samples = self._samples.setdefault(name, deque())
            samples.append((now, successes, failures))
            while len(samples) > 2 and samples[1][0] <= now - self._rate_window:
                samples.popleft()
            _, old_successes, old_failures = samples[0]
        rate = metrics.get("failure_rate", -1.0)
        if isinstance(rate, (int, float)) and rate >= 0:
            return float(rate)
        if len(samples) == 1:  # first sight: the lifetime rate is all there is
            old_successes = old_failures = 0
        failed = failures - old_failures
        decided = failed + successes - old_successes
        return failed / decided if decided > 0 else 0.0

    @staticmethod
    def _limiter(limiter: RateLimiter) -> dict[str, Any]:
        stats = limiter.stats()
        granted = stats.acquired + stats.waited
        return {
            "name": stats.name,
            "rate": stats.rate,
            "capacity": stats.capacity,
            "available": _number(stats.available),
            "acquired": stats.acquired,
            "waited": stats.waited,
            "rejected": stats.rejected,
            "waiting": stats.waiting,
            "wait_share": stats.waited / granted if granted else 0.0,
        }

    @staticmethod
    def _retry(retry: Retry) -> dict[str, Any]:
        stats = retry.stats()
        return {
            "name": retry.name,
            "max_attempts": retry.max_attempts,
            **stats,
            "calls": sum(stats.values()),
        }

    def _health(self) -> dict[str, Any] | None:
        checker = self.checker
        if checker is None:
            return None
        latest = checker.latest_results()
        checks = []
        for check in checker.checks:
            result = latest.get(check.name)
            try:
                history = checker.history(check.name)
            except ValueError:  # removed meanwhile
                continue
            checks.append({
                "name": check.name,
                "status": None if result is None else result.status.value,
                "message": "not run yet" if result is None else result.message,
                "at": None if result is None else result.timestamp,
                "duration": None if result is None else result.duration,
                "history": [_point(r) for r in history],
            })
        statuses = [HealthStatus(c["status"]) for c in checks if c["status"] is not None]
        newest = max((r.timestamp for r in latest.values()), default=None)
        return {
            "overall": HealthStatus.worst(statuses).value if statuses else None,
            "checked_at": newest,
            "checks": checks,
        }

    def _backup(self) -> dict[str, Any] | None:
        checker = self.checker
        if checker is None:
            return None
        from otelres.health.checks import BackupFreshnessCheck

        latest = checker.latest_results()
        for check in checker.checks:
            if isinstance(check, BackupFreshnessCheck):
                result = latest.get(check.name)
                if result is None:
                    return {"check": check.name, "status": None, "message": "not checked yet"}
                details = result.details
                age = details.get("age")
                return {
                    "check": check.name,
                    "status": result.status.value,
                    "message": result.message,
                    "backup_id": details.get("backup_id"),
                    "age_hours": age.get("value") if isinstance(age, Mapping) else None,
                    "interval_hours": details.get("interval_hours"),
                    "at": result.timestamp,
                }
        return None


def _point(result: HealthResult) -> dict[str, Any]:
    return {"status": result.status.value, "at": result.timestamp, "message": result.message}


def _number(value: Any) -> float | None:
    """*value* as a JSON-safe float: None for None and NaN (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def _all_breakers() -> Iterable[CircuitBreaker]:
    from otelres.resilience import all_breakers

    return all_breakers().values()


def _all_limiters() -> Iterable[RateLimiter]:
    from otelres.resilience import all_limiters

    return all_limiters()
