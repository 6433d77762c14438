"""Sliding windows of call outcomes, for the breaker's failure-rate and slow-call-rate rules.

Two kinds, one interface (:meth:`record`, :meth:`rates`, :meth:`clear`):

* :class:`CountWindow` — the last *size* calls, in a ring buffer with running totals;
* :class:`TimeWindow` — the calls of the last *seconds*, in 20 buckets with running totals,
  so a call leaves the window between 0.95 x *seconds* and *seconds* after it was made.

Both report a rate only once the window holds at least *minimum_calls* calls, and -1
before (as Resilience4j does), so a dashboard can tell "no data yet" from "0 %".
Neither is thread-safe on its own: the breaker holds its window lock around them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

__all__ = ["CountWindow", "OutcomeWindow", "TimeWindow"]

_FAILED = 1
_SLOW = 2
BUCKETS = 20


class OutcomeWindow(Protocol):
    """A sliding window of (failed, slow) call outcomes."""

    def record(self, failed: bool, slow: bool) -> tuple[float, float]:
        """Add one call; return ``(failure_rate, slow_call_rate)`` afterwards."""
        ...

    def rates(self) -> tuple[float, float]:
        """``(failure_rate, slow_call_rate)`` in 0..1, each -1 below the minimum calls."""
        ...

    def clear(self) -> None:
        """Forget every call (the breaker closed or opened)."""
        ...


class CountWindow:
    """The outcomes of the last *size* calls.

    A ring buffer of one byte per call (bit 0 failed, bit 1 slow) with running totals, so
    recording a call is O(1) whatever the size.
    """

    __slots__ = ("_calls", "_failures", "_minimum", "_next", "_ring", "_size", "_slow")

    def __init__(self, size: int, minimum_calls: int) -> None:
        self._size = size
        self._minimum = minimum_calls
        self._ring = bytearray(size)
        self.clear()

    def clear(self) -> None:
        self._ring[:] = bytes(self._size)
        self._next = 0
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def record(self, failed: bool, slow: bool) -> tuple[float, float]:
        code = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        index = self._next
        if self._calls == self._size:
            old = self._ring[index]
            self._failures -= old & _FAILED
            self._slow -= (old & _SLOW) >> 1
        else:
            self._calls += 1
        self._ring[index] = code
        self._failures += code & _FAILED
        self._slow += (code & _SLOW) >> 1
        self._next = index + 1 if index + 1 < self._size else 0
        return self.rates()

    def rates(self) -> tuple[float, float]:
        calls = self._calls
        if calls < self._minimum or calls == 0:
            return -1.0, -1.0
        return self._failures / calls, self._slow / calls


class TimeWindow:
    """The outcomes of the calls made in the last *seconds* (by *clock*).

    ``BUCKETS`` buckets of *seconds* / ``BUCKETS`` each, with running totals; buckets that
    slid out are emptied lazily when time is next read, so recording is O(1) amortized and
    an idle window costs nothing.
    """

    __slots__ = (
        "_bucket_calls",
        "_bucket_failures",
        "_bucket_index",
        "_bucket_slow",
        "_calls",
        "_clock",
        "_failures",
        "_last",
        "_minimum",
        "_slow",
        "_width",
    )

    def __init__(self, seconds: float, minimum_calls: int, clock: Callable[[], float]) -> None:
        self._width = seconds / BUCKETS
        self._minimum = minimum_calls
        self._clock = clock
        self.clear()

    def clear(self) -> None:
        self._bucket_calls = [0] * BUCKETS
        self._bucket_failures = [0] * BUCKETS
        self._bucket_slow = [0] * BUCKETS
        self._bucket_index = [-1] * BUCKETS
        self._last = -1
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def _advance(self) -> int:
        """Drop the buckets that slid out of the window; return the current bucket number."""
        now = math.floor(self._clock() / self._width)
        last = self._last
        if now != last:
            # Buckets last+1 .. now are reused; at most BUCKETS of them need clearing.
            first = max(last + 1, now - BUCKETS + 1)
            for number in range(first, now + 1):
                slot = number % BUCKETS
                if self._bucket_index[slot] != number:
                    self._calls -= self._bucket_calls[slot]
                    self._failures -= self._bucket_failures[slot]
                    self._slow -= self._bucket_slow[slot]
                    self._bucket_calls[slot] = 0
                    self._bucket_failures[slot] = 0
                    self._bucket_slow[slot] = 0
                    self._bucket_index[slot] = number
            self._last = now
        return now

    def record(self, failed: bool, slow: bool) -> tuple[float, float]:
        slot = self._advance() % BUCKETS
        self._bucket_calls[slot] += 1
        self._calls += 1
        if failed:
            self._bucket_failures[slot] += 1
            self._failures += 1
        if slow:
            self._bucket_slow[slot] += 1
            self._slow += 1
        return self._rates()

    def rates(self) -> tuple[float, float]:
        self._advance()
        return self._rates()

    def _rates(self) -> tuple[float, float]:
        calls = self._calls
        if calls < self._minimum or calls == 0:
            return -1.0, -1.0
        return self._failures / calls, self._slow / calls
