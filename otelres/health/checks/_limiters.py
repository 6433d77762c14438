"""Built-in check: how often rate limiters make callers wait or turn them away."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from otelres.health._check import HealthCheck
from otelres.health._model import HealthResult, HealthStatus
from otelres.health.checks._lookup import live_components

__all__ = ["LimiterCounts", "RateLimiterCheck"]


class LimiterCounts(NamedTuple):
    """Cumulative outcome counts of one limiter: granted at once, granted after a wait, refused."""

    acquired: int
    waited: int
    rejected: int

    @property
    def total(self) -> int:
        return self.acquired + self.waited + self.rejected


class RateLimiterCheck(HealthCheck):
    """YELLOW when, since the previous run, a limiter rejected more than *max_rejections*
    calls or made more than *max_wait_ratio* of its callers wait.

    Limiters count outcomes cumulatively; the check compares with what it saw last time,
    so it reports the recent past rather than the whole life of the process (its first
    run looks at everything so far). ``details["limiters"]`` holds, per limiter, the
    calls, waits, rejections and wait ratio of that interval.

    Watches the limiters called *limiters* (default: all, from
    :func:`otelres.resilience.all_limiters`); *source* replaces that lookup.
    """

    def __init__(
        self,
        limiters: Iterable[str] = (),
        *,
        max_wait_ratio: float = 0.5,
        max_rejections: int = 0,
        name: str = "rate_limiters",
        tags: Iterable[str] = ("resilience",),
        source: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        if not 0 <= max_wait_ratio <= 1:
            raise ValueError(f"max_wait_ratio must be between 0 and 1, got {max_wait_ratio!r}")
        if max_rejections < 0:
            raise ValueError(f"max_rejections must be >= 0, got {max_rejections!r}")
        self.name = name
        self.tags = frozenset(tags)
        self.watched = tuple(limiters)
        self.max_wait_ratio = max_wait_ratio
        self.max_rejections = max_rejections
        self._source = source
        self._previous: dict[str, LimiterCounts] = {}
        self._lock = threading.Lock()

    def check(self) -> HealthResult:
        """Compare each limiter's counts with the previous run's and judge the difference."""
        report: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        for limiter in live_components(self._source, "otelres.resilience._rate_limiter", "all_limiters"):
            limiter_name = str(getattr(limiter, "name", ""))
            if self.watched and limiter_name not in self.watched:
                continue
            now = limiter_counts(limiter)
            if now is None:
                continue
            with self._lock:
                before = self._previous.get(limiter_name, LimiterCounts(0, 0, 0))
                self._previous[limiter_name] = now
            if now.total < before.total:  # the limiter was replaced or reset
                before = LimiterCounts(0, 0, 0)
            delta = LimiterCounts(*(a - b for a, b in zip(now, before, strict=True)))
            ratio = delta.waited / delta.total if delta.total else 0.0
            report[limiter_name] = {
                "calls": delta.total,
                "waited": delta.waited,
                "rejected": delta.rejected,
                "wait_ratio": round(ratio, 4),
            }
            if delta.rejected > self.max_rejections:
                problems.append(f"{limiter_name} rejected {delta.rejected}")
            if ratio > self.max_wait_ratio:
                problems.append(f"{limiter_name} made {ratio:.0%} of calls wait")
        details = {
            "limiters": report,
            "max_wait_ratio": self.max_wait_ratio,
            "max_rejections": self.max_rejections,
        }
        if problems:
            return HealthResult(self.name, HealthStatus.YELLOW, "; ".join(problems), details)
        count = len(report)
        message = f"{count} limiter{'s' if count != 1 else ''} within limits" if count else "no limiters"
        return HealthResult(self.name, HealthStatus.GREEN, message, details)


def limiter_counts(limiter: Any) -> LimiterCounts | None:
    """The cumulative counts of *limiter*, read from its stats snapshot; None if it has none.

    Accepts a ``stats()`` method (or ``stats`` attribute) returning a mapping or an
    object with ``acquired``, ``waited`` and ``rejected`` counts.
    """
    stats = getattr(limiter, "stats", None)
    if callable(stats):
        stats = stats()
    if stats is None:
        return None

    def read(key: str) -> int:
        value = stats.get(key, 0) if isinstance(stats, Mapping) else getattr(stats, key, 0)
        return int(value or 0)

    return LimiterCounts(read("acquired"), read("waited"), read("rejected"))
