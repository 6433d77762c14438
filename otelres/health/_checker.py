"""The :class:`HealthChecker`: runs checks concurrently and keeps their recent results."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otelres._otel import call_hook
from otelres.health import _telemetry
from otelres.health._check import CheckRegistry, HealthCheck, as_check, default_registry, load_check
from otelres.health._model import HealthResult, HealthStatus
from otelres.health._report import HealthReport
from otelres.health._threads import (
    aborted,
    describe,
    in_daemon_thread,
    run_coroutine,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from otelres.config import Config, HealthSettings

__all__ = ["HealthChecker", "StatusChange"]

_log = logging.getLogger("otelres.health")

_DEFAULT_MESSAGES = {
    HealthStatus.GREEN: "ok",
    HealthStatus.YELLOW: "degraded",
    HealthStatus.RED: "failing",
}


@dataclass(frozen=True)
class StatusChange:
    """What a status-change hook receives: a check's reported status moved from ``old`` to ``new``.

    ``old`` is None the first time the check reports. ``result`` is the new result.
    """

    name: str
    old: HealthStatus | None
    new: HealthStatus
    result: HealthResult


@dataclass
class _State:
    """Per-check bookkeeping; guarded by the checker's lock."""

    history: deque[HealthResult]
    reported: HealthResult | None = None
    failures: int = 0
    successes: int = 0
    cached_until: float = 0.0
    running: set[object] = field(default_factory=set)
    """Tokens of the sync runs whose worker thread is busy."""
    abandoned: dict[object, float] = field(default_factory=dict)
    """Runs that outlived their timeout and are still going -> when they started."""
    flights: dict[asyncio.AbstractEventLoop, asyncio.Future[HealthResult]] = field(default_factory=dict)
    """The run in progress on each event loop, which simultaneous runs join."""


class HealthChecker:
    """Runs health checks concurrently, each with a timeout, and remembers what they said.

    The seed system's usage works unchanged::

        checker = HealthChecker()
        results = await checker.run_all_checks()           # {name: HealthResult}
        overall = checker.get_overall_status(results)      # HealthStatus

    *checks* are :class:`HealthCheck` objects or functions (see :func:`as_check`). Without
    them, the checker resolves ``[health_checks] checks`` of *config* (default: the current
    configuration): each name is a key of ``[health_checks.custom]`` (an import path), a
    check registered with ``@health_check``, or a built-in check, in that order; an empty
    list means the default built-ins (breakers, rate limiters, telemetry) plus every
    registered check. A name that resolves to nothing raises
    :class:`~otelres.config.ConfigError` naming the key.

    Behaviour, each part configurable by keyword or ``[health_checks]``:

    * all selected checks run at once; each is cut at *timeout* seconds (a check's own
      ``timeout`` wins) and becomes RED "timed out after N s" without delaying the others.
      Sync checks run in a worker thread; one still stuck from an earlier run is reported
      RED again instead of starting another thread. Runs of a check started while one is
      in progress on the same loop (simultaneous probes) share its outcome;
    * a check that raises is RED with the error; the checker itself never raises for it;
    * results are cached for *cache_ttl* seconds when GREEN and *cache_ttl_failing*
      seconds when YELLOW or RED (0 disables each);
    * flapping protection: a check turns RED only after *failures_before_red* consecutive
      RED results and back only after *successes_before_green* consecutive non-RED ones
      (the very first result is reported as is); meanwhile the previous status is
      reported and ``details["unconfirmed_status"]`` shows the raw one;
    * the last *history_size* reported results of each check are kept (:meth:`history`);
    * every reported status change is logged (a turn to RED at ERROR level when
      ``alert_on_failure``) and passed to the hooks given to :meth:`on_status_change`;
    * latest results are published on the ``otelres.health.status`` gauge and check
      durations on ``otelres.health.check.duration`` (see docs/TELEMETRY.md).
    """

    def __init__(
        self,
        checks: Iterable[HealthCheck | Callable[..., Any]] | None = None,
        *,
        config: Config | None = None,
        registry: CheckRegistry | None = None,
        timeout: float | None = None,
        cache_ttl: float | None = None,
        cache_ttl_failing: float | None = None,
        failures_before_red: int | None = None,
        successes_before_green: int | None = None,
        history_size: int | None = None,
        alert_on_failure: bool | None = None,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config is None:
            from otelres.config import current

            config = current()
        settings: HealthSettings = config.health_checks
        self.config = config
        self.timeout = _positive("timeout", settings.timeout_seconds if timeout is None else timeout)
        self.cache_ttl = _not_negative("cache_ttl", _pick(cache_ttl, settings.cache_ttl_seconds))
        self.cache_ttl_failing = _not_negative(
            "cache_ttl_failing", _pick(cache_ttl_failing, settings.cache_ttl_failing_seconds)
        )
        self.failures_before_red = _at_least_one(
            "failures_before_red", _pick(failures_before_red, settings.failures_before_red)
        )
        self.successes_before_green = _at_least_one(
            "successes_before_green", _pick(successes_before_green, settings.successes_before_green)
        )
        self.history_size = _at_least_one("history_size", _pick(history_size, settings.history_size))
        self.alert_on_failure = _pick(alert_on_failure, settings.alert_on_failure)
        self._clock = clock
        self._lock = threading.Lock()
        self._checks: dict[str, HealthCheck] = {}
        self._states: dict[str, _State] = {}
        self._hooks: list[Callable[[StatusChange], object]] = []
        self._meter_provider = meter_provider
        self._histogram = _telemetry.duration_histogram(meter_provider)
        registry = default_registry if registry is None else registry
        if checks is None:
            for check in resolve_checks(config, registry):
                self.add_check(check)
        else:
            for obj in checks:
                self.add_check(as_check(obj))
        _telemetry.publish(self, meter_provider)

    # ------------------------------------------------------------------ checks
    def add_check(self, check: HealthCheck | Callable[..., Any], *, replace: bool = False) -> HealthCheck:
        """Add a check (object or function); an existing name is an error unless *replace*."""
        check = as_check(check)
        with self._lock:
            if check.name in self._checks and not replace:
                raise ValueError(f"this checker already has a check named {check.name!r}")
            self._checks[check.name] = check
            self._states[check.name] = _State(deque(maxlen=self.history_size))
        return check

    def remove_check(self, name: str) -> None:
        """Remove check *name* with its history (unknown names are ignored)."""
        with self._lock:
            self._checks.pop(name, None)
            self._states.pop(name, None)

    @property
    def checks(self) -> list[HealthCheck]:
        """The checks, in the order they were added."""
        with self._lock:
            return list(self._checks.values())

    def select(
        self,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[HealthCheck]:
        """The checks named in *names* plus those carrying any of *tags*, minus *exclude*.

        With neither *names* nor *tags*, every check. An unknown name in *names* or
        *exclude*, or a tag no check carries, raises ``ValueError`` listing the known ones
        (a typo must not select nothing and look GREEN).
        """
        names = list(names or ())
        tags = set(tags or ())
        exclude = set(exclude)
        with self._lock:
            known = dict(self._checks)
        unknown = [n for n in [*names, *sorted(exclude)] if n not in known]
        if unknown:
            listing = ", ".join(known) or "none"
            raise ValueError(f"unknown health check {unknown[0]!r}; known checks: {listing}")
        in_use = {tag for check in known.values() for tag in check.tags}
        stray = sorted(tags - in_use)
        if stray:
            listing = ", ".join(sorted(in_use)) or "none"
            raise ValueError(f"no health check has the tag {stray[0]!r}; tags in use: {listing}")
        if not names and not tags:
            chosen = list(known.values())
        else:
            chosen = [c for n, c in known.items() if n in names or (tags & c.tags)]
        return [c for c in chosen if c.name not in exclude]

    def on_status_change(self, hook: Callable[[StatusChange], object]) -> None:
        """Call *hook* with a :class:`StatusChange` whenever a check's reported status changes.

        Hooks run on the thread that ran the checks; one that raises is logged and ignored.
        """
        self._hooks.append(hook)

    # ------------------------------------------------------------------ running
    async def run(
        self,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        *,
        exclude: Iterable[str] = (),
        timeout: float | None = None,
        use_cache: bool = True,
    ) -> HealthReport:
        """Run the selected checks (see :meth:`select`) at once and return the report.

        *timeout* overrides the per-check timeout for this run; ``use_cache=False``
        ignores cached results (fresh ones are still cached).
        """
        started = time.perf_counter()
        chosen = self.select(names, tags, exclude)
        results = await asyncio.gather(*(self._run_one(c, timeout, use_cache) for c in chosen))
        return HealthReport.of(
            {r.name: r for r in results}, duration=time.perf_counter() - started
        )

    async def run_all_checks(
        self,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, HealthResult]:
        """Run the checks (all, or those selected) and return ``{name: HealthResult}``."""
        report = await self.run(names, tags, timeout=timeout)
        return dict(report.results)

    async def run_check(self, name: str, *, timeout: float | None = None) -> HealthResult:
        """Run the single check *name* and return its result."""
        report = await self.run([name], timeout=timeout)
        return report.results[name]

    def run_sync(
        self,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        *,
        exclude: Iterable[str] = (),
        timeout: float | None = None,
    ) -> HealthReport:
        """:meth:`run` for code without an event loop (it starts and closes one)."""
        return run_coroutine(self.run(names, tags, exclude=exclude, timeout=timeout))

    @staticmethod
    def get_overall_status(
        results: Mapping[str, HealthResult] | Iterable[HealthResult] | HealthReport,
    ) -> HealthStatus:
        """The worst status among *results* (GREEN when empty)."""
        if isinstance(results, HealthReport):
            return results.overall
        values = results.values() if isinstance(results, Mapping) else results
        return HealthStatus.worst(r.status for r in values)

    # ------------------------------------------------------------------ reading
    def latest_results(self) -> dict[str, HealthResult]:
        """The most recent reported result of every check that has run."""
        with self._lock:
            return {n: s.reported for n, s in self._states.items() if s.reported is not None}

    def latest_report(self) -> HealthReport:
        """A report over :meth:`latest_results` (without running anything)."""
        return HealthReport.of(self.latest_results())

    def history(self, name: str) -> list[HealthResult]:
        """The last reported results of check *name*, oldest first (at most ``history_size``)."""
        with self._lock:
            state = self._states.get(name)
            if state is None:
                raise ValueError(f"unknown health check {name!r}")
            return list(state.history)

    # ------------------------------------------------------------------ internals
    async def _run_one(self, check: HealthCheck, timeout: float | None, use_cache: bool) -> HealthResult:
        """One check: a fresh enough cached result, the outcome of a run of it already in
        progress on this loop, else a run of its own settled into the reported result.

        Sharing the run in progress is what keeps simultaneous probes (liveness, readiness,
        the scheduled runner) from each calling the exchange.
        """
        name = check.name
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                state = self._states.get(name)
                if state is None:  # removed meanwhile
                    state = _State(deque(maxlen=self.history_size))
                if use_cache and state.reported is not None and self._clock() < state.cached_until:
                    return state.reported
                flight = state.flights.get(loop)
                if flight is None:
                    flight = state.flights[loop] = loop.create_future()
                    break
            try:
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                cancelling = getattr(asyncio.current_task(), "cancelling", None)  # 3.11+
                if not flight.cancelled() or (cancelling is not None and cancelling()):
                    raise
                # The run we joined was cancelled, not us: run the check ourselves.
        try:
            limit = check.timeout if check.timeout is not None else timeout or self.timeout
            raw = await self._execute(check, state, limit)
            self._record_duration(raw)
            result = self._settle(state, raw)
        except BaseException:
            flight.cancel()
            raise
        else:
            flight.set_result(result)
            return result
        finally:
            with self._lock:
                if state.flights.get(loop) is flight:
                    del state.flights[loop]

    async def _execute(self, check: HealthCheck, state: _State, limit: float) -> HealthResult:
        """Run *check* once within *limit* seconds and turn whatever happens into a raw result.

        Async checks become tasks and are cancelled at the limit; sync checks get a daemon
        thread each. A run that outlives its limit (a thread cannot be stopped; a task may
        swallow its cancellation) is remembered as abandoned, and while it is still stuck,
        further runs answer RED at once instead of piling up threads or tasks.
        """
        started = time.perf_counter()
        name = check.name
        token = object()
        with self._lock:
            stuck_since = min(state.abandoned.values(), default=None)
            if stuck_since is None:
                state.running.add(token)
        if stuck_since is not None:
            stuck = self._clock() - stuck_since
            return HealthResult(
                name, HealthStatus.RED,
                f"timed out: still running since an earlier run ({stuck:.3g} s ago)",
                error="TimeoutError",
            )
        release = functools.partial(self._release, state, token)
        try:
            future: asyncio.Future[Any]
            if check.is_async:
                future = asyncio.ensure_future(_call_async(check))
                future.add_done_callback(lambda _: release())
            else:
                future = in_daemon_thread(
                    functools.partial(_call_sync, check, release), name=f"otelres-health-{name}"
                )
            try:
                done, _ = await asyncio.wait({future}, timeout=limit)
            except asyncio.CancelledError:  # the run itself was cancelled: take the check along
                future.cancel()
                raise
            if not done:
                with self._lock:
                    if token in state.running:  # still busy: start no other until it ends
                        state.abandoned[token] = self._clock() - (time.perf_counter() - started)
                future.cancel()
                future.add_done_callback(_consume)
                raise asyncio.TimeoutError
            try:
                value = future.result()
            except (Exception, GeneratorExit) as exc:
                # Reported here, not below: a TimeoutError the check raised itself (a socket
                # timeout) is its error, not our limit. GeneratorExit is the check's own too
                # (not raised at an await here).
                return _raised(name, exc, time.perf_counter() - started)
            except asyncio.CancelledError:
                # Not our cancellation (that would have interrupted the wait above): the
                # check cancelled itself, e.g. a client library's internal timeout.
                return HealthResult(
                    name, HealthStatus.RED, "check was cancelled",
                    duration=time.perf_counter() - started, error="CancelledError",
                )
            if inspect.isawaitable(value):  # a sync check that handed back a coroutine
                value = await asyncio.wait_for(
                    _call_async(value), max(0.0, limit - (time.perf_counter() - started))
                )
            return _normalise(value, name, time.perf_counter() - started)
        except asyncio.TimeoutError:
            return HealthResult(
                name, HealthStatus.RED, f"timed out after {limit:g} s",
                duration=time.perf_counter() - started, error="TimeoutError",
            )
        except Exception as exc:
            return _raised(name, exc, time.perf_counter() - started)

    def _release(self, state: _State, token: object) -> None:
        """A run has ended (even long after its timeout): the check may start again."""
        with self._lock:
            state.running.discard(token)
            state.abandoned.pop(token, None)

    def _record_duration(self, raw: HealthResult) -> None:
        """Record the raw run on the duration histogram; telemetry failures are swallowed."""
        try:
            self._histogram.record(
                raw.duration, {"health.check.name": raw.name, "health.status": raw.status.value}
            )
        except Exception:  # telemetry must never break a health run
            _log.debug("otelres: recording a health check duration failed", exc_info=True)

    def _settle(self, state: _State, raw: HealthResult) -> HealthResult:
        """Apply flapping protection, then cache and remember the result to report."""
        with self._lock:
            previous = state.reported
            reported = raw
            if raw.status is HealthStatus.RED:
                state.failures += 1
                state.successes = 0
                if (
                    previous is not None
                    and previous.status is not HealthStatus.RED
                    and state.failures < self.failures_before_red
                ):
                    reported = raw.with_(
                        status=previous.status,
                        message=f"{raw.message} (RED {state.failures} of "
                        f"{self.failures_before_red} before reporting)",
                        details={**raw.details, "unconfirmed_status": "red"},
                    )
            else:
                state.successes += 1
                state.failures = 0
                if (
                    previous is not None
                    and previous.status is HealthStatus.RED
                    and state.successes < self.successes_before_green
                ):
                    reported = raw.with_(
                        status=HealthStatus.RED,
                        message=f"recovering ({state.successes} of "
                        f"{self.successes_before_green} good results): {raw.message}",
                        details={**raw.details, "unconfirmed_status": raw.status.value},
                    )
            ttl = self.cache_ttl if reported.status is HealthStatus.GREEN else self.cache_ttl_failing
            state.cached_until = self._clock() + ttl if ttl > 0 else 0.0
            state.reported = reported
            state.history.append(reported)
        old = previous.status if previous is not None else None
        if old is not reported.status:
            self._announce(StatusChange(reported.name, old, reported.status, reported))
        return reported

    def _announce(self, change: StatusChange) -> None:
        """Log a status change (RED at ERROR when ``alert_on_failure``) and call the hooks.

        A check's first result is logged only when it is not GREEN: a healthy start is not news.
        """
        if change.old is not None or change.new is not HealthStatus.GREEN:
            level = (
                logging.ERROR
                if change.new is HealthStatus.RED and self.alert_on_failure
                else logging.WARNING if change.new is not HealthStatus.GREEN else logging.INFO
            )
            _log.log(
                level,
                "health check %s is %s: %s",
                change.name,
                change.new.value.upper(),
                change.result.message,
                extra={"health.check.name": change.name, "health.status": change.new.value},
            )
        for hook in list(self._hooks):
            call_hook(hook, change, what="health status hook")

    def __repr__(self) -> str:
        return f"<HealthChecker checks={[c.name for c in self.checks]}>"


async def _call_async(check: HealthCheck | Awaitable[Any]) -> Any:
    """Await an async check (or an awaitable a sync check returned), so it can become a task.

    A non-``Exception`` it raises (``SystemExit``, a custom ``BaseException``) becomes
    ``CheckAborted``, reported RED: left alone, asyncio would let it end the event loop.
    Cancellation, and Ctrl-C on the main thread, pass through.
    """
    awaitable = check.check() if isinstance(check, HealthCheck) else check
    try:
        return await awaitable  # type: ignore[misc]
    except (Exception, asyncio.CancelledError, GeneratorExit):
        # GeneratorExit is also how a coroutine is closed: never turn that into a result
        # (a check raising it is caught where the task's result is read).
        raise
    except BaseException as exc:
        raise aborted(exc) from None


def _call_sync(check: HealthCheck, release: Callable[[], None]) -> Any:
    """Worker-thread body of a sync check; always releases the run's bookkeeping."""
    try:
        return check.check()
    finally:
        release()


def _raised(name: str, exc: BaseException, duration: float) -> HealthResult:
    """The RED result of a check that raised *exc*."""
    error = describe(exc)
    return HealthResult(name, HealthStatus.RED, f"check raised {error}", duration=duration, error=error)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned run's outcome so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _normalise(value: Any, name: str, duration: float) -> HealthResult:
    """A check's return value as a :class:`HealthResult` named *name*; nonsense becomes RED."""
    now = time.time()
    if isinstance(value, HealthResult):
        return value.with_(name=name, duration=duration, timestamp=now)
    if isinstance(value, HealthStatus):
        return HealthResult(name, value, _DEFAULT_MESSAGES[value], duration=duration, timestamp=now)
    return HealthResult(
        name,
        HealthStatus.RED,
        f"check returned {type(value).__name__}; expected a HealthResult or HealthStatus",
        duration=duration,
        timestamp=now,
        error="TypeError",
    )


def resolve_checks(config: Config, registry: CheckRegistry) -> list[HealthCheck]:
    """The checks ``[health_checks]`` of *config* names (see :class:`HealthChecker`).

    Raises :class:`~otelres.config.ConfigError` with one line per name that does not
    resolve, naming the file and key.
    """
    from otelres.config import ConfigError
    from otelres.health.checks import BUILTIN_CHECKS, DEFAULT_CHECKS

    settings = config.health_checks
    where = config.source or "<config>"
    problems: list[str] = []
    custom: dict[str, HealthCheck] = {}
    for key, path in settings.custom.items():
        try:
            custom[key] = load_check(path, key)
        except ValueError as exc:
            problems.append(f"{where}: health_checks.custom.{key}: {exc}")
    names = list(settings.checks) if settings.checks else [*DEFAULT_CHECKS, *settings.custom]
    checks: list[HealthCheck] = []
    listed: dict[str, int] = {}
    for index, name in enumerate(names):
        key = f"health_checks.checks[{index}]"
        if name in listed:
            problems.append(
                f"{where}: {key}: {name!r} is already listed as health_checks.checks[{listed[name]}]"
            )
            continue
        listed[name] = index
        if name in settings.custom:
            if name in custom:
                checks.append(custom[name])
            continue
        found = registry.get(name)
        if found is not None:
            checks.append(found)
        elif name in BUILTIN_CHECKS:
            try:
                checks.append(BUILTIN_CHECKS[name](config))
            except ValueError as exc:
                problems.append(f"{where}: {key}: {exc}")
        else:
            builtins = ", ".join(sorted(BUILTIN_CHECKS))
            problems.append(
                f"{where}: {key}: unknown health check {name!r}; built-in checks are "
                f"{builtins}; add your own under [health_checks.custom] "
                f'({name} = "package.module:function")'
            )
    if problems:
        raise ConfigError(problems)
    if not settings.checks:
        taken = {c.name for c in checks}
        checks.extend(c for c in registry if c.name not in taken)
    return checks


def _pick(value: Any, default: Any) -> Any:
    """*value*, or *default* when it is None (keyword arguments win over ``[health_checks]``)."""
    return default if value is None else value


def _positive(what: str, value: float) -> float:
    """*value* as a float, or ``ValueError`` naming *what* when it is not > 0."""
    if not value > 0:
        raise ValueError(f"{what} must be > 0, got {value!r}")
    return float(value)


def _not_negative(what: str, value: float) -> float:
    """*value* as a float, or ``ValueError`` naming *what* when it is negative."""
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    return float(value)


def _at_least_one(what: str, value: int) -> int:
    """*value*, or ``ValueError`` naming *what* unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value
