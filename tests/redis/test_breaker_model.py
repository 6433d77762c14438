"""The Redis breaker storage keeps the same state machine as the in-process LocalBreakerStorage."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from otelres.resilience import BreakerState, RedisBreakerStorage, RedisConnection
from otelres.resilience._breaker_storage import LocalBreakerStorage, StoredState

pytestmark = pytest.mark.integration

S = BreakerState
_names = itertools.count()

moving = st.sampled_from([S.CLOSED, S.OPEN, S.HALF_OPEN])
stale = st.sampled_from([0, 0, 0, -1, 1])  # mostly the current generation, sometimes not
operations = st.lists(
    st.one_of(
        st.tuples(st.just("fail")),
        st.tuples(st.just("reset")),
        st.tuples(st.just("trans"), moving, moving, stale),
        # From the current state: most transitions then succeed, so deep states are reached.
        st.tuples(st.just("advance"), moving),
        st.tuples(st.just("advance"), moving),
        st.tuples(st.just("force"), st.sampled_from([S.CLOSED, S.FORCED_OPEN, S.DISABLED])),
        st.tuples(st.just("probe"), stale, st.integers(1, 3)),
        st.tuples(st.just("release"), stale, st.booleans()),
    ),
    min_size=1,
    max_size=30,
)



def apply(storage: Any, op: tuple[Any, ...]) -> Any:
    """Run *op* on *storage*; generations are relative to its current one."""
    gen = storage.snapshot().generation
    if op[0] == "fail":
        return storage.add_failure()
    if op[0] == "reset":
        return storage.reset_failures()
    if op[0] == "trans":
        # Open periods of 100 s: the storage never decides by time within one example.
        moved = storage.transition(op[1], op[2], generation=gen + op[3], open_for=100.0)
        return None if moved is None else comparable(moved)
    if op[0] == "advance":
        moved = storage.transition(storage.state, op[1], generation=gen, open_for=100.0)
        return None if moved is None else comparable(moved)
    if op[0] == "force":
        return comparable(storage.force(op[1]))
    if op[0] == "probe":
        return storage.try_acquire_probe(gen + op[1], op[2])
    return storage.release_probe(gen + op[1], success=op[2])


def comparable(stored: StoredState) -> tuple[Any, ...]:
    return (
        stored.state,
        stored.generation,
        stored.failures,
        stored.trips,
        stored.retry_after > 0,
        stored.probes,
        stored.probe_successes,
    )


@example(  # the probe limit, and a stale permit given back
    ops=[
        ("advance", S.OPEN),
        ("advance", S.HALF_OPEN),
        ("probe", 0, 2),
        ("probe", 0, 2),
        ("probe", 0, 2),
        ("release", -1, True),
        ("release", 0, True),
        ("probe", 0, 2),
    ]
)
@example(  # a re-opening counts a trip, closing clears them, force clears everything
    ops=[
        ("fail",),
        ("advance", S.OPEN),
        ("advance", S.HALF_OPEN),
        ("advance", S.OPEN),
        ("advance", S.HALF_OPEN),
        ("advance", S.CLOSED),
        ("fail",),
        ("force", S.FORCED_OPEN),
        ("fail",),
        ("trans", S.CLOSED, S.OPEN, 0),
    ]
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_redis_storage_matches_the_local_model(conn: RedisConnection, ops: list[tuple[Any, ...]]) -> None:
    """Any sequence of protocol calls gets the same answers and states from Redis as locally."""
    remote = RedisBreakerStorage(f"m{next(_names)}", conn)
    local = LocalBreakerStorage()
    for op in ops:
        assert apply(remote, op) == apply(local, op), op
        assert comparable(remote.snapshot()) == comparable(local.snapshot()), op
        assert remote.state is local.state
