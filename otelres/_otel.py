"""The OpenTelemetry plumbing every otelres component shares.

Library code only ever touches ``opentelemetry-api`` through this module:

* :func:`get_tracer` / :func:`get_meter` hand out the tracer and meter named
  ``otelres`` (with version and schema URL), for the global providers or for providers a
  user injected, created once per provider;
* :class:`ObservedSet` keeps the live components of one kind (breakers, limiters, ...)
  and publishes their plain per-instance counters through observable instruments that the
  SDK reads at collection time, so the success path of a guarded call never makes a
  synchronous instrument call;
* :func:`span_mode` / :func:`set_span_mode` hold the process-wide span mode
  (``"off"``, ``"events"`` or ``"always"``), which ``otelres.configure()`` sets from
  ``[telemetry] span_mode``;
* :func:`call_hook` runs a user hook so that it can never raise into the caller.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from opentelemetry import metrics, trace

from otelres._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = [
    "SCHEMA_URL",
    "SPAN_MODES",
    "ObservedSet",
    "SpanMode",
    "call_hook",
    "get_meter",
    "get_tracer",
    "set_span_mode",
    "span_mode",
]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
INSTRUMENTATION_NAME = "otelres"

SpanMode = Literal["off", "events", "always"]
SPAN_MODES: tuple[SpanMode, ...] = ("off", "events", "always")

_log = logging.getLogger("otelres")

_span_mode: SpanMode = "events"

# Weak, so that a provider a test or an application throws away is neither kept alive
# by otelres nor confused with a later one that happens to get the same id().
_meters: weakref.WeakKeyDictionary[Any, Meter] = weakref.WeakKeyDictionary()
_tracers: weakref.WeakKeyDictionary[Any, Tracer] = weakref.WeakKeyDictionary()
_global_meter: Meter | None = None
_global_tracer: Tracer | None = None
_lock = threading.Lock()


def span_mode() -> SpanMode:
    """The process-wide span mode: ``"off"``, ``"events"`` (default) or ``"always"``."""
    return _span_mode


def set_span_mode(mode: str) -> None:
    """Set the process-wide span mode; components constructed with ``span_mode=None`` follow it.

    ``"off"``: metrics only. ``"events"``: retries, rejections, transitions, fallbacks,
    timeouts and limiter waits become events on the active span (and each retry attempt
    gets a child span). ``"always"``: a span for every guarded call.
    """
    global _span_mode
    if mode not in SPAN_MODES:
        raise ValueError(f"span_mode must be one of {', '.join(SPAN_MODES)}; got {mode!r}")
    _span_mode = mode


def get_meter(provider: MeterProvider | None = None) -> Meter:
    """The ``otelres`` meter for *provider* (the global one when None), created once."""
    global _global_meter
    if provider is None:
        # The API's proxy provider hands back a proxy meter that follows a provider the
        # application sets later, so caching the global meter once is safe.
        if _global_meter is None:
            _global_meter = metrics.get_meter(
                INSTRUMENTATION_NAME, __version__, schema_url=SCHEMA_URL
            )
        return _global_meter
    return _cached(_meters, provider, provider.get_meter)


def get_tracer(provider: TracerProvider | None = None) -> Tracer:
    """The ``otelres`` tracer for *provider* (the global one when None), created once."""
    global _global_tracer
    if provider is None:
        if _global_tracer is None:
            _global_tracer = trace.get_tracer(
                INSTRUMENTATION_NAME, __version__, schema_url=SCHEMA_URL
            )
        return _global_tracer
    return _cached(_tracers, provider, provider.get_tracer)


_S = TypeVar("_S")


def _cached(
    cache: weakref.WeakKeyDictionary[Any, _S], provider: object, make: Callable[..., _S]
) -> _S:
    """The ``otelres`` meter or tracer of *provider* from *cache*, made by *make* the first time."""
    with _lock:
        scoped = cache.get(provider)
        if scoped is None:
            scoped = make(INSTRUMENTATION_NAME, __version__, schema_url=SCHEMA_URL)
            cache[provider] = scoped
    return scoped


T = TypeVar("T")


class ObservedSet(Generic[T]):
    """The live components of one kind, published through observable instruments.

    *install* is called once per meter provider, the first time a component is added
    for it, with the ``otelres`` meter and a function returning a snapshot of the live
    components; it creates the observable instruments whose callbacks read them::

        def _install(meter, live):
            def calls(options):
                for breaker in live():
                    yield Observation(breaker._successes, {"breaker.name": breaker.name, ...})
            meter.create_observable_counter("otelres.breaker.calls", [calls], unit="{call}")

        _BREAKERS = ObservedSet(_install)
        _BREAKERS.add(self, meter_provider)   # in __init__

    Components are held weakly: one that is garbage collected stops being reported.
    Callbacks never raise into the SDK: a failing *install* callback is logged.
    """

    __slots__ = ("_global", "_groups", "_install", "_lock")

    def __init__(self, install: Callable[[Meter, Callable[[], list[T]]], None]) -> None:
        self._install = install
        self._global: weakref.WeakSet[Any] | None = None
        self._groups: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def add(self, component: T, meter_provider: MeterProvider | None = None) -> None:
        """Publish *component* through the instruments of *meter_provider* (global if None)."""
        with self._lock:
            group = self._global if meter_provider is None else self._groups.get(meter_provider)
            if group is None:
                group = weakref.WeakSet()
                if meter_provider is None:
                    self._global = group
                else:
                    self._groups[meter_provider] = group
                self._install(get_meter(meter_provider), _snapshot_of(group))
            group.add(component)

    def discard(self, component: T) -> None:
        """Stop publishing *component* (it also stops when it is garbage collected)."""
        with self._lock:
            for group in self._all_groups():
                group.discard(component)

    def live(self) -> list[T]:
        """Every live component, whatever provider it reports to."""
        with self._lock:
            groups = self._all_groups()
        seen: list[T] = []
        for group in groups:
            seen.extend(group)
        return seen

    def _all_groups(self) -> list[weakref.WeakSet[Any]]:
        groups = list(self._groups.values())
        if self._global is not None:
            groups.append(self._global)
        return groups


def _snapshot_of(group: weakref.WeakSet[Any]) -> Callable[[], list[Any]]:
    def live() -> list[Any]:
        return list(group)

    return live


def call_hook(hook: Callable[..., object], *args: Any, what: str = "hook") -> None:
    """Call a user *hook* with *args*; an exception it raises is logged, never propagated."""
    try:
        hook(*args)
    except Exception:
        _log.exception("otelres: %s %r raised; the guarded call is unaffected", what, hook)


def safe_observations(
    produce: Callable[[], Iterable[metrics.Observation]], name: str
) -> Iterable[metrics.Observation]:
    """Run an observable callback body, turning a failure into a log line and no points."""
    try:
        return list(produce())
    except Exception:
        _log.exception("otelres: collecting %s failed", name)
        return []
