"""Faults the local exchange injects, and scripted sequences of them.

A :class:`Fault` says what goes wrong (an HTTP status, Kraken's rate-limit error in a
200 body, maintenance, a slow answer, a dropped connection), for which requests (venue,
path prefix) and how often (``times``; None means until cleared). A :class:`Phase` is a
named set of faults that lasts a while; a list of phases is a scenario the server plays
in the background (:meth:`ExchangeServer.play`), like :data:`DEMO_SCENARIO`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEMO_SCENARIO", "Fault", "FaultKind", "Phase"]

FaultKind = Literal["http", "kraken_rate_limit", "maintenance", "delay", "drop"]
_KINDS: tuple[str, ...] = ("http", "kraken_rate_limit", "maintenance", "delay", "drop")


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of trouble the local exchange makes for matching requests.

    * ``"http"``: answer with ``status`` (500, 503, 429, ...) and, when set, a
      ``Retry-After`` header of ``retry_after`` seconds;
    * ``"kraken_rate_limit"``: Kraken answers HTTP 200 with ``{"error": ["EAPI:Rate limit
      exceeded"]}`` (Binance gets a 429 instead, as it would send);
    * ``"maintenance"``: the venue's maintenance answer (Kraken: ``EService:Unavailable``
      and ``SystemStatus`` reporting ``maintenance``; Binance: HTTP 503 and
      ``system/status`` reporting 1);
    * ``"delay"``: wait ``delay`` seconds, then answer normally. With
      ``after_processing=True`` the request takes effect first (an order is created) and
      only the answer is late: a client whose timeout is shorter sees a timeout for an
      order that exists, which is what safe order retry must cope with;
    * ``"drop"``: close the connection without answering (a network error); with
      ``after_processing=True`` the request takes effect first.

    ``venue`` (``"kraken"``/``"binance"``) and ``path`` (a path prefix such as
    ``"/0/public/Ticker"``) narrow the requests it applies to; ``times`` is how many
    requests it hits before it is used up (None: until cleared).
    """

    kind: FaultKind = "http"
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    after_processing: bool = False
    venue: str | None = None
    path: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Fault.kind must be one of {', '.join(_KINDS)}; got {self.kind!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status code; got {self.status!r}")
        if self.delay < 0:
            raise ValueError(f"Fault.delay must be >= 0 seconds; got {self.delay!r}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"Fault.times must be >= 1 or None; got {self.times!r}")

    def matches(self, venue: str, path: str) -> bool:
        """Whether this fault applies to a request for *path* on *venue*."""
        return (self.venue is None or self.venue == venue) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass(frozen=True, slots=True)
class Phase:
    """A named stretch of a scenario: *faults* are active for *duration* seconds."""

    name: str
    duration: float
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"Phase {self.name!r}: duration must be > 0 seconds")


DEMO_SCENARIO: tuple[Phase, ...] = (
    Phase("healthy", 10.0),
    Phase("503 storm", 10.0, (Fault("http", status=503),)),
    Phase("429 burst", 5.0, (Fault("http", status=429, retry_after=1.0, venue="binance"),
                             Fault("kraken_rate_limit", venue="kraken"))),
    Phase("maintenance", 10.0, (Fault("maintenance"),)),
    Phase("recovery", 10.0),
)
"""The demo's story: healthy, a 503 storm, a 429 burst, maintenance, recovery (45 s)."""


@dataclass(slots=True)
class _ActiveFault:
    fault: Fault
    remaining: int | None
    hits: int = 0


@dataclass(slots=True)
class FaultTable:
    """The faults in force, consulted once per request (thread-safe)."""

    _active: list[_ActiveFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._active.append(_ActiveFault(fault, fault.times))

    def replace(self, faults: tuple[Fault, ...]) -> None:
        with self._lock:
            self._active = [_ActiveFault(f, f.times) for f in faults]

    def clear(self) -> None:
        with self._lock:
            self._active.clear()

    def take(self, venue: str, path: str) -> Fault | None:
        """The first fault matching the request, counting one use of it."""
        with self._lock:
            for active in self._active:
                if active.fault.matches(venue, path):
                    active.hits += 1
                    if active.remaining is not None:
                        active.remaining -= 1
                        if active.remaining == 0:
                            self._active.remove(active)
                    return active.fault
        return None

    def active(self) -> list[Fault]:
        with self._lock:
            return [a.fault for a in self._active]
