"""The states of a circuit breaker and the record its transition listeners receive."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BreakerState", "BreakerTransition"]


class BreakerState(str, enum.Enum):
    """The state of a :class:`~otelres.resilience.CircuitBreaker`.

    The values are the strings reported by ``get_state()``, metrics and span events.
    """

    CLOSED = "closed"
    """Calls pass; failures are counted."""
    OPEN = "open"
    """Calls are rejected until the open duration ends."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls pass; their outcome closes or re-opens the breaker."""
    FORCED_OPEN = "forced_open"
    """Opened by hand (``force_open()``): every call is rejected until ``reset()``."""
    DISABLED = "disabled"
    """Switched off (``disable()`` or config): every call passes and nothing trips it."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One change of a breaker's state, as passed to transition listeners.

    ``at`` is the breaker clock's reading (monotonic seconds); ``reason`` says why in a few
    words (``"failure threshold"``, ``"failure rate"``, ``"slow call rate"``, ``"probe
    failed"``, ``"probes succeeded"``, ``"open timeout elapsed"``, ``"forced"``,
    ``"disabled"``, ``"reset"``); ``open_for`` is the open duration when ``to_state`` is
    ``open``, else None.
    """

    name: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str
    open_for: float | None = None
