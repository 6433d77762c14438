"""The sliding windows report the same rates as a naive list of every call would."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from otelres.resilience._breaker_window import BUCKETS, CountWindow, TimeWindow
from otelres.testing import FakeClock

outcomes = st.tuples(st.booleans(), st.booleans())


def _naive(calls: list[tuple[bool, bool]], minimum: int) -> tuple[float, float]:
    if len(calls) < minimum or not calls:
        return -1.0, -1.0
    return (
        sum(f for f, _ in calls) / len(calls),
        sum(s for _, s in calls) / len(calls),
    )


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 12),
    minimum=st.integers(1, 12),
    calls=st.lists(outcomes, max_size=60),
)
def test_count_window_matches_the_last_calls(
    size: int, minimum: int, calls: list[tuple[bool, bool]]
) -> None:
    """A count window's rates are those of its last `size` calls, -1 below `minimum` calls."""
    window = CountWindow(size, minimum)
    for index, (failed, slow) in enumerate(calls):
        last = calls[max(0, index + 1 - size) : index + 1]
        assert window.record(failed, slow) == _naive(last, minimum)
    window.clear()
    assert window.rates() == (-1.0, -1.0)


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.sampled_from([1.0, 10.0, 60.0]),
    minimum=st.integers(1, 5),
    steps=st.lists(st.tuples(st.floats(0, 30, allow_nan=False), outcomes), max_size=50),
)
def test_time_window_matches_the_bucketed_calls(
    seconds: float, minimum: int, steps: list[tuple[float, tuple[bool, bool]]]
) -> None:
    """A time window holds exactly the calls of its last BUCKETS buckets of seconds/BUCKETS each."""
    clock = FakeClock()
    window = TimeWindow(seconds, minimum, clock)
    width = seconds / BUCKETS
    made: list[tuple[float, bool, bool]] = []
    for wait, (failed, slow) in steps:
        clock.advance(wait * seconds / 10)
        now = clock()
        made.append((now, failed, slow))
        current = math.floor(now / width)
        held = [(f, s) for t, f, s in made if math.floor(t / width) > current - BUCKETS]
        expected = _naive(held, minimum)
        got = window.record(failed, slow)
        assert got == expected
    clock.advance(seconds * 1.01)
    assert window.rates() == (-1.0, -1.0)
