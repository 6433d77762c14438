"""A monotonic clock that only moves when a test moves it."""

from __future__ import annotations

import threading


class FakeClock:
    """A monotonic clock for tests: call it for the time, :meth:`advance` to move it.

    Pass it wherever otelres takes a ``clock`` (a zero-argument function returning
    seconds); pass :meth:`sleep` / :meth:`async_sleep` where it takes a ``sleep`` so that
    waiting moves the clock instead of the test::

        clock = FakeClock()
        breaker = CircuitBreaker("api", reset_timeout=30, clock=clock)
        ...
        clock.advance(30)   # the breaker now admits a probe
    """

    __slots__ = ("_lock", "_now", "slept")

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.slept: list[float] = []
        """Every duration passed to :meth:`sleep` / :meth:`async_sleep`, in order."""

    def __call__(self) -> float:
        return self._now

    def now(self) -> float:
        """The current time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (never backwards)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back; got advance({seconds})")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record *seconds* and advance the clock by it, without waiting."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))

    async def async_sleep(self, seconds: float) -> None:
        """Like :meth:`sleep`, as a coroutine (it still yields to the event loop once)."""
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)
