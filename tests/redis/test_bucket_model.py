"""The Redis token bucket follows the same model as the in-process LocalTokenBucket."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelres.resilience import LocalTokenBucket, RedisConnection, RedisTokenBucket

pytestmark = pytest.mark.integration

# Refill so slow that the few hundred milliseconds a sequence takes add under 0.001 tokens:
# costs on a 0.5 grid then make every grant decision exact on both sides.
RATE = 0.001
CAPACITY = 5.0
_names = itertools.count()

costs = st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 5.0])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("try"), costs),
        st.tuples(st.just("reserve"), costs, st.sampled_from([None, 250.0, 1250.0, 4750.0])),
        st.tuples(st.just("refund"), costs),
    ),
    min_size=1,
    max_size=15,
)



def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 0.01 * max(1.0, abs(a), abs(b))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_redis_bucket_matches_the_local_model(conn: RedisConnection, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Any sequence of try / reserve / refund gets the same answers from Redis as from LocalTokenBucket."""
    remote = RedisTokenBucket(f"m{next(_names)}", conn, rate=RATE, capacity=CAPACITY)
    local = LocalTokenBucket(RATE, CAPACITY)
    for op in ops:
        if op[0] == "try":
            got, want = remote.try_acquire(op[1]), local.try_acquire(op[1])
        elif op[0] == "reserve":
            got, want = remote.reserve(op[1], op[2]), local.reserve(op[1], op[2])
        else:
            remote.refund(op[1])
            local.refund(op[1])
            got = want = None
        assert close(got, want), (op, got, want)
        # A fresh reader: available() may answer from a reading up to a second old.
        reader = RedisTokenBucket(remote.name, conn, rate=RATE, capacity=CAPACITY)
        assert abs(reader.available() - local.available()) < 0.01, op
