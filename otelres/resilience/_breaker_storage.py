"""Where a circuit breaker's state lives: the :class:`BreakerStorage` protocol.

A :class:`~otelres.resilience.CircuitBreaker` makes every *decision* itself (when to trip,
how long to stay open, whether a probe result closes it); a storage only keeps the state
those decisions read and change, and makes each change **atomic**. The default,
:class:`LocalBreakerStorage`, keeps it in the process. A shared storage (Redis) lets every
process that uses one exchange API key see one breaker: a trip in one process rejects
calls in all of them, and the half-open probe limit holds across processes.

What a storage keeps for one breaker:

* ``state`` — a :class:`BreakerState`;
* ``generation`` — an integer that increases on every state change; it names one open or
  half-open period so that late answers from an older period change nothing;
* ``failures`` — consecutive failures counted in the current closed period;
* ``trips`` — how many times in a row the breaker opened without closing in between
  (the breaker grows the open duration with it);
* the end of the current open period, kept by the **storage's** clock: the breaker passes a
  duration (``open_for``) and reads back ``retry_after``, the seconds left. Monotonic clocks
  of different processes cannot be compared, so a shared storage uses its own time
  (for Redis: a key with a millisecond TTL, or the server's ``TIME``);
* the half-open probes in flight and the successful probes of the current half-open period.

Which parts are per process, whatever the storage: the call counters that metrics publish,
and the failure-rate / slow-call-rate sliding windows.

How the breaker uses a storage (so an implementation knows what is hot):

* on **every call** it reads :attr:`~BreakerStorage.state`; when it is ``closed`` the call
  runs, and after a success it reads :attr:`~BreakerStorage.failures` and calls
  :meth:`~BreakerStorage.reset_failures` only when that is non-zero. Both reads must be
  cheap: a shared storage may answer from a local cache (bounded staleness is its own
  setting, e.g. ``[resilience.redis] state_cache_seconds``), and must never raise;
* after a failure in ``closed`` it calls :meth:`~BreakerStorage.add_failure` and, when the
  count reaches the threshold, ``transition(CLOSED, OPEN, generation=..., open_for=...)``;
* in ``open`` it calls :meth:`~BreakerStorage.snapshot` for ``retry_after``; at 0 it calls
  ``transition(OPEN, HALF_OPEN, generation=...)`` (losing that race is fine: another caller
  or process won it) and then :meth:`~BreakerStorage.try_acquire_probe`;
* a probe's end is :meth:`~BreakerStorage.release_probe`, followed by
  ``transition(HALF_OPEN, CLOSED)`` once enough probes succeeded, or by
  ``transition(HALF_OPEN, OPEN)`` at the first failure;
* ``force_open()``, ``disable()`` and ``reset()`` call :meth:`~BreakerStorage.force`.

A shared storage that cannot reach its server must not raise into the guarded call: it
answers from its local fallback according to its fail mode, and reports that through its
own telemetry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

from otelres.resilience._breaker_state import BreakerState

__all__ = [
    "BreakerStorage",
    "LocalBreakerStorage",
    "StorageFactory",
    "StoredState",
    "default_storage_factory",
    "set_default_storage_factory",
]

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN


class StoredState(NamedTuple):
    """A consistent reading of one breaker's stored state (an immutable record).

    ``retry_after`` is the number of seconds until the current open period ends: positive
    while ``state`` is ``open`` and the period runs, 0 once it ended, and 0 in every other
    state. ``probes`` is the number of half-open probes in flight and ``probe_successes``
    the successful probes of the current half-open period (both 0 outside half-open).

    A named tuple rather than a frozen dataclass: the breaker reads one on every rejected
    call, and building a tuple costs a fraction of a frozen dataclass's ``__init__``.
    """

    state: BreakerState
    generation: int
    failures: int
    trips: int
    retry_after: float = 0.0
    probes: int = 0
    probe_successes: int = 0


@runtime_checkable
class BreakerStorage(Protocol):
    """The state of one circuit breaker, changed atomically.

    Every method is safe to call from many threads (and, for a shared storage, from many
    processes) at once. Methods that take a ``generation`` act only when it equals the
    stored generation (compare-and-set) and otherwise change nothing.
    """

    @property
    def state(self) -> BreakerState:
        """The current state. Read on every guarded call: cheap, never raises."""
        ...

    @property
    def failures(self) -> int:
        """Consecutive failures of the current closed period (may be a cached value)."""
        ...

    def snapshot(self) -> StoredState:
        """A consistent reading of everything stored (see :class:`StoredState`)."""
        ...

    def add_failure(self) -> int:
        """Atomically add one to ``failures`` and return the new count.

        Only called while the breaker reads ``closed``; a storage may return 0 without
        counting if the stored state is no longer ``closed``.
        """
        ...

    def reset_failures(self) -> None:
        """Set ``failures`` to 0 (a success ended the run of failures)."""
        ...

    def transition(
        self,
        from_state: BreakerState,
        to_state: BreakerState,
        *,
        generation: int,
        open_for: float = 0.0,
    ) -> StoredState | None:
        """Atomically move from *from_state* to *to_state* if nothing moved it first.

        Acts only when the stored state is *from_state* and the stored generation is
        *generation*; otherwise returns None and changes nothing (the caller lost a race
        and re-reads). On success the generation increases by one, and:

        * to ``open``: ``trips`` increases by one, the open period of *open_for* seconds
          starts now (storage clock), ``failures`` and probe counts become 0;
        * to ``half_open``: probes in flight and probe successes become 0;
        * to ``closed``: ``failures``, ``trips`` and probe counts become 0.

        Returns the new state as :meth:`snapshot` would.
        """
        ...

    def force(self, to_state: BreakerState) -> StoredState:
        """Unconditionally set *to_state* (manual ``force_open()``, ``disable()``, ``reset()``).

        *to_state* is ``forced_open``, ``disabled`` or ``closed``. The generation increases
        by one and ``failures``, ``trips`` and probe counts become 0. Returns the new state.
        """
        ...

    def try_acquire_probe(self, generation: int, limit: int) -> bool:
        """Take one half-open probe permit if fewer than *limit* are in flight.

        True only when the stored state is ``half_open`` of *generation* and fewer than
        *limit* probes are in flight (that count then increases by one). A shared storage
        should let permits expire (e.g. after the open duration) so that a process that
        died mid-probe cannot keep the breaker half-open forever.
        """
        ...

    def release_probe(self, generation: int, *, success: bool) -> int:
        """Give back a probe permit of *generation*; count it as a success if *success*.

        Returns the number of successful probes of this half-open period so far (0 and no
        change when *generation* is no longer current).
        """
        ...


StorageFactory = Callable[[str, Callable[[], float]], BreakerStorage]
"""Makes the storage of the breaker named by the first argument; the second is the
breaker's monotonic clock (a local storage times the open period with it)."""


class LocalBreakerStorage:
    """The default :class:`BreakerStorage`: the state of one breaker in this process.

    ``state`` and ``failures`` are plain attributes read without a lock, so the closed-state
    success path costs two attribute reads. Changes take a lock that is held for a few
    dictionary-free assignments, never while a guarded function runs. The open period is
    timed with *clock* (the breaker's monotonic clock).
    """

    __slots__ = (
        "_clock",
        "_generation",
        "_lock",
        "_open_until",
        "_probe_successes",
        "_probes",
        "_trips",
        "failures",
        "state",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.state: BreakerState = _CLOSED
        self.failures = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._trips = 0
        self._open_until = 0.0
        self._probes = 0
        self._probe_successes = 0

    def snapshot(self) -> StoredState:
        with self._lock:
            return self._snapshot()

    def add_failure(self) -> int:
        with self._lock:
            if self.state is not _CLOSED:
                return 0
            self.failures += 1
            return self.failures

    def reset_failures(self) -> None:
        # A plain store: racing an add_failure() can at worst keep one failure too many.
        self.failures = 0

    def transition(
        self,
        from_state: BreakerState,
        to_state: BreakerState,
        *,
        generation: int,
        open_for: float = 0.0,
    ) -> StoredState | None:
        with self._lock:
            if self.state is not from_state or self._generation != generation:
                return None
            if to_state is _OPEN:
                self._trips += 1
                self._open_until = self._clock() + open_for
            elif to_state is _CLOSED:
                self._trips = 0
            self._set(to_state)
            return self._snapshot()

    def force(self, to_state: BreakerState) -> StoredState:
        with self._lock:
            self._trips = 0
            self._set(to_state)
            return self._snapshot()

    def try_acquire_probe(self, generation: int, limit: int) -> bool:
        with self._lock:
            if (
                self.state is not _HALF_OPEN
                or self._generation != generation
                or self._probes >= limit
            ):
                return False
            self._probes += 1
            return True

    def release_probe(self, generation: int, *, success: bool) -> int:
        with self._lock:
            if self._generation != generation or self.state is not _HALF_OPEN:
                return 0
            if self._probes > 0:
                self._probes -= 1
            if success:
                self._probe_successes += 1
            return self._probe_successes

    def _set(self, to_state: BreakerState) -> None:
        """Enter *to_state* with a new generation and cleared counts (lock held)."""
        self._generation += 1
        self.failures = 0
        self._probes = 0
        self._probe_successes = 0
        self.state = to_state

    def _snapshot(self) -> StoredState:
        retry_after = 0.0
        if self.state is _OPEN:
            retry_after = max(0.0, self._open_until - self._clock())
        return StoredState(
            state=self.state,
            generation=self._generation,
            failures=self.failures,
            trips=self._trips,
            retry_after=retry_after,
            probes=self._probes,
            probe_successes=self._probe_successes,
        )

    def __repr__(self) -> str:
        return f"LocalBreakerStorage(state={self.state.value!r}, failures={self.failures})"


def _local_factory(name: str, clock: Callable[[], float]) -> BreakerStorage:
    return LocalBreakerStorage(clock)


_default_factory: StorageFactory = _local_factory


def default_storage_factory() -> StorageFactory:
    """The factory breakers built without ``storage=`` get their storage from."""
    return _default_factory


def set_default_storage_factory(factory: StorageFactory | None) -> None:
    """Make *factory* build the storage of breakers created from now on without ``storage=``.

    None restores the local default. This is how a shared storage (Redis) is switched on
    for every breaker of an application, for instance by ``otelres.configure()`` when
    ``[resilience.redis] enabled = true``.
    """
    global _default_factory
    _default_factory = _local_factory if factory is None else factory
