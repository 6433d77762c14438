"""Alert rules evaluated from the OpenTelemetry metric pipeline itself.

An :class:`AlertManager` owns a metric reader (``manager.reader``) that the application
registers on its SDK ``MeterProvider`` next to its exporters::

    manager = AlertManager([breaker_open(), health_red(for_seconds=60)], [LogAlertHandler()])
    provider = MeterProvider(metric_readers=[manager.reader, ...])

At every evaluation the reader collects the same data an exporter would see (cumulative
temporality), and each rule is checked against every point of its instrument whose
attributes match the rule's filter: one alert per matching attribute set. An alert is
*pending* while its condition holds for less than ``for_seconds``, then *firing*; it is
*resolved* when the condition stops holding or its series disappears. Handlers get one
notification when it fires, again every ``renotify_seconds`` while it keeps firing, and
one when it resolves; a handler that fails is logged and counted, and never stops the
others.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import inspect
import logging
import math
import threading
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricReader

from otelres._otel import get_meter
from otelres.monitoring._alert_rules import Alert, AlertRule, label_key, prometheus_twin

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricsData

    from otelres.config import Config

__all__ = ["AlertHandler", "AlertManager", "AlertMetricReader"]

AlertHandler = Callable[[Alert], object]
"""A notification target: any callable taking an :class:`Alert`; an ``async def`` works too."""
_log = logging.getLogger("otelres.alerts")


class _Series:
    """The evaluation state of one rule for one attribute set.

    ``pending_since`` is the monotonic time the condition started holding (None when it does
    not); ``firing``, ``started_at`` (Unix time), ``last_notified`` (monotonic) and
    ``notifications`` track the firing alert; ``value`` is the last measured value and
    ``samples`` the (time, count, sum) history of a windowed rule.
    """

    __slots__ = (
        "firing",
        "labels",
        "last_notified",
        "notifications",
        "pending_since",
        "samples",
        "started_at",
        "value",
    )

    def __init__(self, labels: Mapping[str, Any]) -> None:
        self.labels = dict(labels)
        self.pending_since: float | None = None
        self.firing = False
        self.started_at = 0.0
        self.last_notified = 0.0
        self.notifications = 0
        self.value: float | None = None
        self.samples: deque[tuple[float, float, float]] = deque()


class AlertMetricReader(MetricReader):
    """The metric reader an :class:`AlertManager` evaluates its rules from.

    Register it on the SDK ``MeterProvider`` (``metric_readers=[manager.reader]``). Every
    collection, whoever triggers it, is evaluated.
    """

    def __init__(self, manager: AlertManager) -> None:
        """A reader with the SDK's default (cumulative) temporality, reporting to *manager*."""
        super().__init__()
        self._manager = manager

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        """Called by the SDK with each collection: evaluate it."""
        self._manager._on_metrics(metrics_data)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Stop the manager's evaluation thread (the provider calls this on shutdown)."""
        self._manager.stop()


class AlertManager:
    """Evaluates :class:`AlertRule` s on the OTel metric pipeline and notifies handlers.

    * *rules*, *handlers*: initial rules and notification targets (see :meth:`add_rule`,
      :meth:`add_handler`); a handler is any callable taking an :class:`Alert`.
    * *renotify_seconds*: repeat the firing notification of an alert that keeps firing this
      often (None: never).
    * *send_resolved*: notify when an alert resolves.
    * *interval_seconds*: the period of :meth:`start`'s background evaluation.
    * *service_name*: set on every :class:`Alert` (default ``[telemetry] service_name``).
    * *meter_provider*: where ``otelres.alerts.fired`` and ``otelres.alerts.notifications``
      are counted (default the global provider).
    * *clock*, *wall_clock*: monotonic and Unix time sources, injectable for tests.

    Register :attr:`reader` on the ``MeterProvider``, then call :meth:`evaluate` or
    :meth:`start` a background thread (also ``with manager:``).
    """

    def __init__(
        self,
        rules: Iterable[AlertRule] = (),
        handlers: Iterable[AlertHandler] = (),
        *,
        renotify_seconds: float | None = 3600.0,
        send_resolved: bool = True,
        interval_seconds: float = 15.0,
        service_name: str | None = None,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if renotify_seconds is not None and renotify_seconds <= 0:
            raise ValueError(
                f"AlertManager(renotify_seconds): expected a number > 0 or None, got {renotify_seconds!r}"
            )
        if interval_seconds <= 0:
            raise ValueError(
                f"AlertManager(interval_seconds): expected a number > 0, got {interval_seconds!r}"
            )
        if service_name is None:
            from otelres import config

            service_name = config.current().telemetry.service_name
        self.renotify_seconds = renotify_seconds
        self.send_resolved = send_resolved
        self.interval_seconds = interval_seconds
        self.service_name = service_name
        self._clock = clock
        self._wall = wall_clock
        self._rules: dict[str, AlertRule] = {}
        self._handlers: list[AlertHandler] = []
        self._series: dict[tuple[str, tuple[tuple[str, Any], ...]], _Series] = {}
        self._evaluations = 0
        self._previous_at: float | None = None
        self._state_lock = threading.RLock()
        self._received: list[Alert] | None = None
        self._evaluating: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tasks: set[asyncio.Task[object]] = set()
        self._hinted: set[str] = set()
        meter = get_meter(meter_provider)
        self._fired = meter.create_counter(
            "otelres.alerts.fired",
            unit="{alert}",
            description="Alerts that started firing.",
        )
        self._notified = meter.create_counter(
            "otelres.alerts.notifications",
            unit="{notification}",
            description="Notifications handed to alert handlers, by outcome.",
        )
        self.reader = AlertMetricReader(self)
        """Register this on the SDK ``MeterProvider`` (``metric_readers=[manager.reader]``)."""
        for rule in rules:
            self.add_rule(rule)
        for handler in handlers:
            self.add_handler(handler)

    @classmethod
    def from_config(
        cls,
        config: Config | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AlertManager:
        """A manager with the rules and handlers of ``[monitoring.alerts]``.

        *config* defaults to ``otelres.config.current()``; credentials are read from the
        environment variables the section names (*environ* defaults to ``os.environ``);
        *options* are passed to the constructor. Raises :class:`~otelres.config.ConfigError`
        naming every key at fault. See docs/MONITORING.md for the section's keys.
        """
        from otelres.monitoring._alert_config import alert_manager_from_config

        return alert_manager_from_config(config, environ=environ, **options)

    # ------------------------------------------------------------------ configuration
    def add_rule(self, rule: AlertRule) -> None:
        """Evaluate *rule* from the next evaluation on; rule names must be unique."""
        if not isinstance(rule, AlertRule):
            raise TypeError(f"AlertManager.add_rule(rule): expected an AlertRule, got {rule!r}")
        with self._state_lock:
            if rule.name in self._rules:
                raise ValueError(f"AlertManager.add_rule: a rule named {rule.name!r} exists already")
            self._rules[rule.name] = rule

    def add_handler(self, handler: AlertHandler) -> None:
        """Notify *handler* (any callable taking an :class:`Alert`) from now on."""
        if not callable(handler):
            raise TypeError(f"AlertManager.add_handler(handler): expected a callable, got {handler!r}")
        with self._state_lock:
            self._handlers.append(handler)

    @property
    def rules(self) -> list[AlertRule]:
        """The rules, in the order they were added."""
        return list(self._rules.values())

    def firing(self) -> list[Alert]:
        """The alerts firing now (as of the last evaluation)."""
        now = self._wall()
        with self._state_lock:
            return [
                self._alert(self._rules[key[0]], series, "firing", now)
                for key, series in self._series.items()
                if series.firing and key[0] in self._rules
            ]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> list[Alert]:
        """Collect from the pipeline now, evaluate every rule, notify; the notifications sent.

        Blocks until every handler is done, so from async code, where it would hold the
        event loop through a webhook's timeouts and retries, await :meth:`evaluate_async`
        instead. Raises ``RuntimeError`` when :attr:`reader` is not registered on a
        ``MeterProvider``.
        """
        received = self._collect()
        self._dispatch(received)
        return received

    async def evaluate_async(self) -> list[Alert]:
        """:meth:`evaluate` for async code: the event loop keeps running throughout.

        The collection and every plain handler (webhook, e-mail, your function) run in
        worker threads (``asyncio.to_thread``), and an ``async def`` handler is awaited on
        the running loop. Handlers run side by side, each getting the notifications in
        order; this returns the notifications once every handler is done. A failing
        handler is logged and counted, and never stops the others.
        """
        received = await asyncio.to_thread(self._collect)
        if received:
            with self._state_lock:
                handlers = list(self._handlers)
            await asyncio.gather(*(self._deliver_async(h, received) for h in handlers))
        return received

    def _collect(self) -> list[Alert]:
        """Collect from the pipeline and step every rule; the notifications due (not sent)."""
        # The SDK's own collect() only logs a warning for an unregistered reader.
        if getattr(self.reader, "_collect", True) is None:
            raise RuntimeError(
                "AlertManager.evaluate(): its reader is not registered on a MeterProvider; "
                "pass MeterProvider(metric_readers=[manager.reader, ...])"
            )
        with self._state_lock:
            self._received = None
            self._evaluating = threading.get_ident()
            try:
                self.reader.collect()
            finally:
                self._evaluating = None
            received = self._take_received()
            if received is None:  # the SDK reported no metric at all: every series is gone
                received = self._process(None)
        return received

    def _take_received(self) -> list[Alert] | None:
        """The notifications the last collection produced, forgetting them."""
        received, self._received = self._received, None
        return received

    def _on_metrics(self, data: MetricsData) -> None:
        """Evaluate a collection handed over by the reader (whoever asked for it).

        Within :meth:`evaluate` the notifications are left for it to send once the state
        lock is released; a collection triggered elsewhere (``force_flush``) sends them here.
        """
        with self._state_lock:
            try:
                notifications = self._process(data)
            except Exception:  # a collection (an exporter's, a flush) must never fail because of us
                _log.exception("otelres: evaluating alert rules failed; skipping this collection")
                notifications = []
            if self._evaluating == threading.get_ident():
                self._received = notifications  # evaluate() dispatches once the lock is released
                return
        self._dispatch(notifications)

    def _process(self, data: MetricsData | None) -> list[Alert]:
        """Step every rule's series through the collected *data*; the notifications due.

        Points are indexed by lower-cased instrument name; every matching point is a series.
        Series not reported this time step with a false condition (so they resolve) and are
        forgotten, which keeps memory bounded by what the pipeline reports.
        """
        now = self._clock()
        index: dict[str, list[tuple[Mapping[str, Any], Any]]] = {}
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points = index.setdefault(metric.name.lower(), [])
                    for point in metric.data.data_points:
                        points.append((point.attributes or {}, point))
        out: list[Alert] = []
        seen: set[tuple[str, tuple[tuple[str, Any], ...]]] = set()
        self._hint_prometheus_names(index)
        for rule in self._rules.values():
            for attributes, point in index.get(rule.instrument.lower(), ()):
                if not rule.matches(attributes):
                    continue
                key = (rule.name, label_key(attributes))
                seen.add(key)
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = _Series(attributes)
                    if rule.window_seconds is not None and self._previous_at is not None:
                        # It did not exist at the previous evaluation: it started from zero since.
                        series.samples.append((self._previous_at, 0.0, 0.0))
                value = self._measure(rule, series, point, now)
                series.value = value
                self._step(rule, series, value is not None and rule.holds(value), now, out)
        for key in [k for k in self._series if k not in seen]:
            series = self._series[key]
            rule_or_none = self._rules.get(key[0])
            if rule_or_none is not None:
                self._step(rule_or_none, series, False, now, out)
            del self._series[key]
        self._evaluations += 1
        self._previous_at = now
        return out

    def _hint_prometheus_names(self, index: Mapping[str, object]) -> None:
        """Warn once per rule whose instrument is the Prometheus spelling of a reported one.

        Such a rule would otherwise wait silently forever: a user coming from PromQL writes
        ``otelres_breaker_calls_total`` where the pipeline reports ``otelres.breaker.calls``.
        """
        for rule in self._rules.values():
            if rule.name in self._hinted or rule.instrument.lower() in index:
                continue
            twin = prometheus_twin(rule.instrument, index)
            if twin is not None:
                self._hinted.add(rule.name)
                _log.warning(
                    "otelres: alert rule %r watches %r, which this pipeline does not report; "
                    "rules use OpenTelemetry names: did you mean %r?",
                    rule.name,
                    rule.instrument,
                    twin,
                )

    @staticmethod
    def _measure(rule: AlertRule, series: _Series, point: Any, now: float) -> float | None:
        """The value *rule* compares for *point*: its statistic, over the window when set.

        Windowed rules keep (time, count, sum) samples per series, pruned to the window plus
        one older sample that serves as the baseline. None when there is nothing to compare
        (a windowed mean without new recordings, a histogram without min/max).
        """
        histogram = not hasattr(point, "value")
        if histogram:
            count, total = float(point.count), float(point.sum)
        else:
            count, total = float(point.value), 0.0
        window = rule.window_seconds
        if window is not None:
            samples = series.samples
            samples.append((now, count, total))
            while len(samples) >= 2 and samples[1][0] <= now - window:
                samples.popleft()
            _, base_count, base_total = samples[0]
            if count < base_count:  # the cumulative series restarted
                base_count = base_total = 0.0
            count, total = count - base_count, total - base_total
        if not histogram:
            return count
        stat = rule.statistic
        if stat == "count":
            return count
        if stat == "sum":
            return total
        if stat in ("mean", "value"):
            return total / count if count else None
        bound = getattr(point, stat, None)
        return None if bound is None or math.isinf(bound) else float(bound)

    def _step(self, rule: AlertRule, series: _Series, holds: bool, now: float, out: list[Alert]) -> None:
        """Move *series* through pending / firing / resolved, appending notifications to *out*."""
        if holds:
            if series.pending_since is None:
                series.pending_since = now
            if not series.firing:
                if now - series.pending_since >= rule.for_seconds:
                    series.firing = True
                    series.started_at = self._wall()
                    series.notifications = 1
                    series.last_notified = now
                    self._count_fired(rule)
                    out.append(self._alert(rule, series, "firing", None))
            elif self.renotify_seconds is not None and now - series.last_notified >= self.renotify_seconds:
                series.notifications += 1
                series.last_notified = now
                out.append(self._alert(rule, series, "firing", None))
            return
        series.pending_since = None
        if series.firing:
            series.firing = False
            if self.send_resolved:
                out.append(self._alert(rule, series, "resolved", self._wall()))

    def _count_fired(self, rule: AlertRule) -> None:
        """Add one to ``otelres.alerts.fired`` for *rule*."""
        try:
            self._fired.add(1, {"alert.name": rule.name, "alert.severity": rule.severity})
        except Exception:  # telemetry never breaks alerting
            _log.debug("otelres: counting an alert failed", exc_info=True)

    def _alert(self, rule: AlertRule, series: _Series, status: Any, resolved_at: float | None) -> Alert:
        """The :class:`Alert` record of *series* with *status*."""
        labels = types.MappingProxyType(dict(series.labels))
        digest = hashlib.sha256(repr((rule.name, label_key(series.labels))).encode()).hexdigest()
        return Alert(
            name=rule.name,
            status=status,
            severity=rule.severity,
            summary=rule.describe(series.value, labels, status),
            instrument=rule.instrument,
            labels=labels,
            value=series.value,
            comparison=rule.comparison,
            threshold=rule.threshold,
            started_at=series.started_at,
            resolved_at=resolved_at if status == "resolved" else None,
            fingerprint=digest[:16],
            notification=series.notifications,
            service=self.service_name,
        )

    def _dispatch(self, notifications: list[Alert]) -> None:
        """Hand the notifications to every handler; a failure is logged and counted.

        Each handler gets them in order. Outside an event loop (the background thread),
        handlers run side by side, one thread each, and this returns once all are done: a
        webhook that hangs through its timeouts and retries must not hold the e-mail back.
        Inside a running loop they run one after another in this thread, so that an
        ``async def`` handler still becomes a task of that loop.
        """
        if not notifications:
            return
        with self._state_lock:
            handlers = list(self._handlers)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            in_loop = False
        else:
            in_loop = True
        if in_loop or len(handlers) < 2:
            for handler in handlers:
                self._deliver(handler, notifications)
            return
        workers = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._deliver, handler, notifications),
                name=f"otelres-alerts-{_handler_name(handler)}",
                daemon=True,
            )
            for handler in handlers[1:]
        ]
        for worker in workers:
            worker.start()
        self._deliver(handlers[0], notifications)
        for worker in workers:
            worker.join()

    def _deliver(self, handler: AlertHandler, notifications: list[Alert]) -> None:
        """Notify *handler* of each alert in turn (firing before resolved, as they came)."""
        for alert in notifications:
            self._notify(handler, alert)

    async def _deliver_async(self, handler: AlertHandler, notifications: list[Alert]) -> None:
        """Notify *handler* of each alert in turn without blocking the running loop.

        The handler is called in a worker thread; an awaitable it returns (an ``async def``
        handler's coroutine) is awaited here, on the loop.
        """
        name = _handler_name(handler)
        for alert in notifications:
            try:
                result = await asyncio.to_thread(handler, alert)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._handled(name, alert, failed=True)
            else:
                self._handled(name, alert, failed=False)

    def _notify(self, handler: AlertHandler, alert: Alert) -> None:
        """Call one handler; an awaitable it returns is run to completion or scheduled.

        Without a running event loop in this thread (the background thread) the awaitable
        runs here with ``asyncio.run``; inside a running loop (``evaluate()`` called from
        async code) it becomes a task of that loop, counted when it finishes.
        """
        name = _handler_name(handler)
        try:
            result = handler(alert)
            if inspect.isawaitable(result):
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    asyncio.run(_awaited(result))
                else:
                    task = loop.create_task(_awaited(result))
                    self._tasks.add(task)
                    task.add_done_callback(functools.partial(self._task_done, name, alert))
                    return
        except Exception:
            self._handled(name, alert, failed=True)
            return
        self._handled(name, alert, failed=False)

    def _task_done(self, name: str, alert: Alert, task: asyncio.Task[object]) -> None:
        """Count (and log) the outcome of an async handler scheduled on a running loop."""
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            self._handled(name, alert, failed=False)
            return
        try:
            raise error
        except Exception:
            self._handled(name, alert, failed=True)

    def _handled(self, name: str, alert: Alert, *, failed: bool) -> None:
        """Log a failure (inside the ``except`` that caught it) and count the notification."""
        if failed:
            _log.exception(
                "otelres: alert handler %s failed for %s (%s); the other handlers still run",
                name,
                alert.name,
                alert.status,
            )
        try:
            self._notified.add(
                1,
                {
                    "alert.name": alert.name,
                    "alert.status": alert.status,
                    "alert.handler": name,
                    "alert.outcome": "failure" if failed else "success",
                },
            )
        except Exception:
            _log.debug("otelres: counting a notification failed", exc_info=True)

    # ------------------------------------------------------------------ background thread
    def start(self) -> None:
        """Evaluate every ``interval_seconds`` in a daemon thread until :meth:`stop`."""
        with self._state_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="otelres-alerts", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the background thread (waiting up to *timeout* seconds for it)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        """The background loop: evaluate every interval, never dying on an error."""
        warned = False
        while not self._stop.wait(self.interval_seconds):
            try:
                self.evaluate()
            except RuntimeError as exc:
                if not warned:
                    _log.warning("otelres: %s", exc)
                    warned = True
            except Exception:
                _log.exception("otelres: evaluating alert rules failed; retrying next interval")

    def __enter__(self) -> AlertManager:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _awaited(awaitable: Awaitable[object]) -> object:
    """A coroutine awaiting *awaitable* (``asyncio.run`` and ``create_task`` want coroutines)."""
    return await awaitable


def _handler_name(handler: AlertHandler) -> str:
    """The ``alert.handler`` attribute value: its ``name``, its ``__name__``, or its type's name."""
    name = getattr(handler, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(handler, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(handler).__name__
