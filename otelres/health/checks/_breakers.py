"""Built-in check: the state of circuit breakers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from otelres.health._check import HealthCheck
from otelres.health._model import HealthResult, HealthStatus
from otelres.health.checks._lookup import live_components

__all__ = ["CircuitBreakerCheck"]

# Every live breaker registers with its metrics here, registry or not (a breaker built
# directly with CircuitBreaker(...) is not in all_breakers()).
_PUBLISHED = "otelres.resilience._breaker_metrics"

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

    Watches the breakers called *breakers* (default: every live breaker in the process,
    whether from the registry or built directly with ``CircuitBreaker(...)``). A watched
    name with no breaker yet is GREEN (it has never failed) and listed under
    ``details["not_created"]``. ``details["breakers"]`` maps each breaker to its state.

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
        for breaker in live_components(self._source, _PUBLISHED, "PUBLISHED.live"):
            breaker_name = str(getattr(breaker, "name", ""))
            if self.watched and breaker_name not in self.watched:
                continue
            states[breaker_name] = _state_text(_state_of(breaker))
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


def _state_of(breaker: Any) -> Any:
    """A breaker's state: its ``state``, else what its published instruments read."""
    state = getattr(breaker, "state", None)
    if state is None and callable(getattr(breaker, "_current_state", None)):
        state = breaker._current_state()
    return "unknown" if state is None else state


def _state_text(state: Any) -> str:
    """A state as ``BreakerState`` spells it (pybreaker's ``half-open`` becomes ``half_open``)."""
    value = getattr(state, "value", state)
    return str(value).replace("-", "_").lower()
