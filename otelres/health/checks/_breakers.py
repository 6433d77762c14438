"""Built-in check: the state of circuit breakers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from otelres.health._check import HealthCheck
from otelres.health._model import HealthResult, HealthStatus

__all__ = ["CircuitBreakerCheck"]

#: Breaker state -> the status it makes the check. Unknown states are YELLOW.
STATE_STATUS: Mapping[str, HealthStatus] = {
    "closed": HealthStatus.GREEN,
    "open": HealthStatus.RED,
    "half_open": HealthStatus.YELLOW,
    "forced_open": HealthStatus.YELLOW,
    "disabled": HealthStatus.YELLOW,
}


class CircuitBreakerCheck(HealthCheck):
    """RED when a watched breaker is open; YELLOW when one is half-open, forced open or disabled.

    Watches the breakers called *breakers* (default: every breaker in the process, from
    :func:`otelres.resilience.all_breakers`). A watched name with no breaker yet is GREEN
    (it has never failed) and listed under ``details["not_created"]``. ``details["breakers"]``
    maps each breaker to its state.

    *source* replaces the breaker lookup (a function returning breakers, each with
    ``name`` and ``state``); handy for tests and for breakers kept elsewhere.
    """

    def __init__(
        self,
        breakers: Iterable[str] = (),
        *,
        name: str = "circuit_breakers",
        tags: Iterable[str] = ("resilience",),
        source: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self.name = name
        self.tags = frozenset(tags)
        self.watched = tuple(breakers)
        self._source = source

    def check(self) -> HealthResult:
        """Read each watched breaker's state now; the worst decides the status."""
        states: dict[str, str] = {}
        for breaker in _breakers(self._source):
            breaker_name = str(getattr(breaker, "name", ""))
            if self.watched and breaker_name not in self.watched:
                continue
            states[breaker_name] = _state_text(getattr(breaker, "state", "unknown"))
        missing = [n for n in self.watched if n not in states]
        by_status: dict[HealthStatus, list[str]] = {}
        for breaker_name, state in sorted(states.items()):
            status = STATE_STATUS.get(state, HealthStatus.YELLOW)
            by_status.setdefault(status, []).append(f"{breaker_name} ({state})")
        status = HealthStatus.worst(by_status)
        details: dict[str, Any] = {"breakers": states}
        if missing:
            details["not_created"] = missing
        if status is HealthStatus.GREEN:
            count = len(states)
            message = f"{count} breaker{'s' if count != 1 else ''} closed" if count else "no breakers"
        else:
            parts = by_status.get(HealthStatus.RED, []) + by_status.get(HealthStatus.YELLOW, [])
            message = "not closed: " + ", ".join(parts)
        return HealthResult(self.name, status, message, details)


def _breakers(source: Callable[[], Iterable[Any]] | None) -> list[Any]:
    """The breakers to look at: from *source*, else the registry if resilience is loaded."""
    if source is not None:
        found: Any = source()
    else:
        # Not imported when absent: then no such object can exist in this process, and
        # the CLI stays fast.
        module = sys.modules.get("otelres.resilience._breaker")
        lookup = getattr(module, "all_breakers", None)
        if lookup is None:
            return []
        found = lookup()
    if isinstance(found, Mapping):
        found = found.values()
    return list(found)


def _state_text(state: Any) -> str:
    """A state as ``BreakerState`` spells it (pybreaker's ``half-open`` becomes ``half_open``)."""
    value = getattr(state, "value", state)
    return str(value).replace("-", "_").lower()
