"""Side-by-side timing for the resilience benchmarks (bench_retry, bench_limiter, bench_policy)
and the monitoring ones (bench_logging, bench_metrics).

Every contender runs the same number of calls per round, the contenders take turns within
each round in a rotating order (interleaved, so machine noise hits all of them alike; the
garbage collector is off inside the timed loops, as in ``timeit``), and the report gives the
median time per call and the median of the per-round ratios against a baseline.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable

Timer = Callable[[], float]
"""Runs one round and returns the seconds per call."""


def sync_timer(fn: Callable[[], object], calls: int) -> Timer:
    """A timer that calls *fn* *calls* times."""

    def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    return run


def async_timer(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[object]], calls: int) -> Timer:
    """A timer that awaits *fn()* *calls* times inside one task on *loop*."""

    async def many() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        return (time.perf_counter() - start) / calls

    def run() -> float:
        return loop.run_until_complete(many())

    return run


class Result:
    """One contender's rounds: ``samples`` (s/call), their ``median``, and ``ratio`` to the baseline."""

    def __init__(self, samples: list[float], ratio: float) -> None:
        self.samples = samples
        self.median = statistics.median(samples)
        self.ratio = ratio

    def extra_us(self, other: Result) -> float:
        """This minus *other* in microseconds per call, best round against best round.

        Used for "metrics on minus off", two runs of identical code on the success path: the
        least disturbed rounds are the fairest comparison on a loaded machine.
        """
        return (min(self.samples) - min(other.samples)) * 1e6


def compare(title: str, timers: dict[str, Timer], *, rounds: int = 15) -> dict[str, Result]:
    """Run *timers* interleaved for *rounds*; return a :class:`Result` per name.

    The first timer is the baseline every ratio is taken against. Prints a small table.
    """
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        # Rotate who goes first, so that no contender always runs right after another one's
        # garbage; and keep the collector out of the timed loops, as timeit does.
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            gc.disable()
            try:
                samples[name].append(timers[name]())
            finally:
                gc.enable()
    base = names[0]
    result: dict[str, Result] = {}
    print(f"\n{title}")
    for name in names:
        ratios = [s / b for s, b in zip(samples[name], samples[base], strict=True)]
        result[name] = Result(samples[name], statistics.median(ratios))
        print(f"  {name:<48} {result[name].median * 1e6:8.2f} us/call   {result[name].ratio:6.2f}x {base}")
    return result


def verdict(label: str, ratio: float, target: float) -> bool:
    """Print whether *ratio* meets *target* (lower is better) and return it."""
    ok = ratio <= target
    print(f"  -> {label}: {ratio:.3f} (target <= {target}) {'OK' if ok else 'MISSED'}")
    return ok
