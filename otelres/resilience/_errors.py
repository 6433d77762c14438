"""The exceptions otelres' guards raise when they refuse a call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres.resilience._pybreaker_import import load_pybreaker

if TYPE_CHECKING:
    import pybreaker
else:
    pybreaker = load_pybreaker()  # without the 0.3-0.5 s `import redis` pybreaker would do


class ResilienceError(Exception):
    """Base class of every error an otelres guard raises on its own account.

    ``name`` is the guard's name. The guarded function's own exceptions are never wrapped.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


BreakerRejection = pybreaker.CircuitBreakerError
"""Any breaker's refusal: otelres' :class:`CircuitBreakerOpenError` and pybreaker's own
``CircuitBreakerError`` (from breakers users keep, see ``instrument_pybreaker``)."""


class CircuitBreakerOpenError(pybreaker.CircuitBreakerError, ResilienceError):
    """Raised instead of calling the function while breaker ``name`` rejects calls.

    A subclass of ``pybreaker.CircuitBreakerError``, so existing ``except`` clauses keep
    working. ``retry_after`` is the number of seconds until the breaker admits a probe
    call (0 when half-open probes are already running, None when forced open or unknown).
    """

    def __init__(self, name: str, retry_after: float | None, state: str = "open") -> None:
        # Raised on every rejected call of an open breaker, so the message is built only
        # when someone reads it; the args make the error picklable (multiprocessing).
        Exception.__init__(self, name, retry_after, state)
        self.name = name
        self.retry_after = retry_after
        self.state = state

    def __str__(self) -> str:
        when = "" if self.retry_after is None else f"; next probe in {self.retry_after:.3g} s"
        return f"circuit breaker {self.name!r} is {self.state}{when}"


class GuardMisuseError(TypeError):
    """A guard was used in a way that cannot protect the call: a sync ``call()`` given an
    ``async def`` function, which only creates the coroutine.

    A programming error to fix, not a service failure: no retry repeats it, no breaker
    counts it, no fallback answers it.
    """


class RateLimitExceededError(ResilienceError):
    """Raised when rate limiter ``name`` cannot grant the tokens (reject mode, or ``max_wait`` passed).

    ``retry_after`` is the number of seconds until enough tokens would be available.
    """

    def __init__(self, name: str, retry_after: float | None, message: str | None = None) -> None:
        text = message or f"rate limit {name!r} exceeded"
        if retry_after is not None and message is None:
            text += f"; tokens available in {retry_after:.3g} s"
        super().__init__(text, name=name)
        self.retry_after = retry_after


class BulkheadFullError(ResilienceError):
    """Raised when bulkhead ``name`` has no free slot and no room left in its queue."""


class CallTimeoutError(ResilienceError, TimeoutError):
    """Raised when a call guarded by timeout ``name`` did not finish within ``timeout`` seconds.

    A subclass of the builtin :class:`TimeoutError` (so ``except TimeoutError`` catches it)
    and of :class:`ResilienceError`. A circuit breaker around the timeout records it as a
    failure with ``error.type`` ``CallTimeoutError``.
    """

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(
            f"call guarded by timeout {name!r} took longer than {timeout:.3g} s", name=name
        )
        self.timeout = timeout
