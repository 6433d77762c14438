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

import hashlib
import logging
import math
import operator
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.sdk.metrics.export import MetricReader

from otelres._otel import get_meter

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = [
    "Alert",
    "AlertHandler",
    "AlertManager",
    "AlertMetricReader",
    "AlertRule",
    "breaker_open",
    "health_red",
]

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
Statistic = Literal["value", "count", "sum", "mean", "min", "max"]
AlertHandler = Callable[["Alert"], object]
"""A notification target: any callable taking an :class:`Alert` (its return value is ignored)."""

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_STATISTICS = ("value", "count", "sum", "mean", "min", "max")
_log = logging.getLogger("otelres.alerts")


def _label_key(attributes: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items()))


@dataclass(frozen=True)
class AlertRule:
    """A threshold on an OTel instrument: ``<statistic of instrument> <comparison> <threshold>``.

    * *instrument*: the instrument name (any meter, any kind), matched case-insensitively.
    * *attributes*: a filter; a point matches when each listed attribute has the given
      value, or one of the values when a tuple, list or set is given. Each matching
      attribute set is its own alert.
    * *for_seconds*: how long the condition must hold before the alert fires (0: at once).
    * *window_seconds*: when set, the rule looks at the *increase* over the last window
      instead of the cumulative value: the number of failures in the last 5 minutes,
      not since start. For histograms the windowed ``mean`` is ``Δsum / Δcount``.
    * *statistic*: what of a point is compared. Sums and gauges have one value
      (``value``). Histograms: ``count``, ``sum``, ``mean`` (also ``value``), and without a
      window ``min`` and ``max``.
    * *summary*: a ``str.format`` template with ``{name}``, ``{value}``, ``{threshold}``,
      ``{instrument}`` and ``{labels[attribute.name]}``; a readable default otherwise.

    Invalid arguments raise ``ValueError`` naming the argument.
    """

    name: str
    instrument: str
    comparison: Comparison = ">"
    threshold: float = 0.0
    attributes: Mapping[str, Any] = field(default_factory=dict)
    for_seconds: float = 0.0
    window_seconds: float | None = None
    statistic: Statistic = "value"
    severity: str = "warning"
    summary: str = ""

    def __post_init__(self) -> None:
        where = f"AlertRule {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"AlertRule(name): expected a non-empty string, got {self.name!r}")
        if not isinstance(self.instrument, str) or not self.instrument:
            raise ValueError(f"{where}: instrument must be a non-empty string, got {self.instrument!r}")
        if self.comparison not in _COMPARE:
            raise ValueError(
                f"{where}: comparison must be one of {', '.join(_COMPARE)}, got {self.comparison!r}"
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
            raise ValueError(f"{where}: threshold must be a number, got {self.threshold!r}")
        if not isinstance(self.for_seconds, (int, float)) or self.for_seconds < 0:
            raise ValueError(f"{where}: for_seconds must be a number >= 0, got {self.for_seconds!r}")
        if self.window_seconds is not None and (
            not isinstance(self.window_seconds, (int, float)) or self.window_seconds <= 0
        ):
            raise ValueError(
                f"{where}: window_seconds must be a number > 0 or None, got {self.window_seconds!r}"
            )
        if self.statistic not in _STATISTICS:
            raise ValueError(
                f"{where}: statistic must be one of {', '.join(_STATISTICS)}, got {self.statistic!r}"
            )
        if self.window_seconds is not None and self.statistic in ("min", "max"):
            raise ValueError(
                f"{where}: statistic {self.statistic!r} cannot be taken over a window "
                "(cumulative histograms keep min and max since start only)"
            )
        if not isinstance(self.attributes, Mapping):
            raise ValueError(f"{where}: attributes must be a mapping, got {self.attributes!r}")
        filters = {
            str(k): frozenset(v) if isinstance(v, (tuple, list, set, frozenset)) else v
            for k, v in self.attributes.items()
        }
        object.__setattr__(self, "attributes", types.MappingProxyType(filters))

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """Whether a point with *attributes* passes this rule's attribute filter."""
        for key, wanted in self.attributes.items():
            if key not in attributes:
                return False
            have = attributes[key]
            if isinstance(wanted, frozenset):
                if have not in wanted:
                    return False
            elif have != wanted:
                return False
        return True

    def holds(self, value: float) -> bool:
        """Whether *value* meets the condition."""
        return _COMPARE[self.comparison](value, self.threshold)

    def describe(self, value: float | None, labels: Mapping[str, Any]) -> str:
        """The summary of an alert of this rule for *value* and *labels*."""
        if self.summary:
            try:
                return self.summary.format(
                    name=self.name,
                    value=value,
                    threshold=self.threshold,
                    instrument=self.instrument,
                    labels=labels,
                )
            except (KeyError, IndexError, ValueError, AttributeError):
                return self.summary
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        what = self.instrument if self.statistic == "value" else f"{self.statistic}({self.instrument})"
        if self.window_seconds is not None:
            what = f"increase of {what} over {self.window_seconds:g}s"
        current = "no value" if value is None else f"{value:g}"
        return f"{what}{{{shown}}} {self.comparison} {self.threshold:g} (now {current})"


def health_red(
    check: str | None = None,
    *,
    for_seconds: float = 60.0,
    name: str | None = None,
    severity: str = "critical",
) -> AlertRule:
    """A rule that fires when health check *check* (any check when None) is RED for *for_seconds*.

    Reads the ``otelres.health.status`` gauge (0 green, 1 yellow, 2 red) that
    ``otelres.health`` publishes, one alert per ``health.check.name``.
    """
    return AlertRule(
        name=name or (f"health_red:{check}" if check else "health_red"),
        instrument="otelres.health.status",
        comparison=">=",
        threshold=2,
        attributes={"health.check.name": check} if check else {},
        for_seconds=for_seconds,
        severity=severity,
        summary="health check {labels[health.check.name]} is RED",
    )


def breaker_open(
    breaker: str | None = None,
    *,
    for_seconds: float = 0.0,
    states: Sequence[str] = ("open",),
    name: str | None = None,
    severity: str = "critical",
) -> AlertRule:
    """A rule that fires while circuit breaker *breaker* (any breaker when None) is open.

    Reads the ``otelres.breaker.state`` gauge (1 for each breaker's current
    ``breaker.state``), one alert per ``breaker.name``. Pass
    ``states=("open", "forced_open")`` to alert on breakers opened by hand too.
    """
    attributes: dict[str, Any] = {"breaker.state": tuple(states)}
    if breaker:
        attributes["breaker.name"] = breaker
    return AlertRule(
        name=name or (f"breaker_open:{breaker}" if breaker else "breaker_open"),
        instrument="otelres.breaker.state",
        comparison="==",
        threshold=1,
        attributes=attributes,
        for_seconds=for_seconds,
        severity=severity,
        summary="circuit breaker {labels[breaker.name]} is {labels[breaker.state]}",
    )


@dataclass(frozen=True)
class Alert:
    """One notification about one alert: what fired (or resolved), where, and the value seen.

    ``started_at`` / ``resolved_at`` are Unix times in seconds; ``notification`` counts the
    firing notifications of this alert so far (2 and up are re-notifications);
    ``fingerprint`` identifies the alert (rule plus labels) across notifications.
    """

    name: str
    status: Literal["firing", "resolved"]
    severity: str
    summary: str
    instrument: str
    labels: Mapping[str, Any]
    value: float | None
    comparison: str
    threshold: float
    started_at: float
    resolved_at: float | None
    fingerprint: str
    notification: int
    service: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data (the webhook payload; times as ISO 8601 UTC)."""
        return {
            "status": self.status,
            "name": self.name,
            "severity": self.severity,
            "summary": self.summary,
            "service": self.service,
            "instrument": self.instrument,
            "labels": dict(self.labels),
            "value": self.value,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "started_at": _iso(self.started_at),
            "resolved_at": None if self.resolved_at is None else _iso(self.resolved_at),
            "fingerprint": self.fingerprint,
            "notification": self.notification,
        }


def _iso(unix: float) -> str:
    whole = int(unix)
    millis = int((unix - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class _Series:
    """The evaluation state of one rule for one attribute set."""

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
        super().__init__()
        self._manager = manager

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
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

        Raises ``RuntimeError`` when :attr:`reader` is not registered on a ``MeterProvider``.
        """
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
        self._dispatch(received)
        return received

    def _take_received(self) -> list[Alert] | None:
        received, self._received = self._received, None
        return received

    def _on_metrics(self, data: MetricsData) -> None:
        with self._state_lock:
            notifications = self._process(data)
            if self._evaluating == threading.get_ident():
                self._received = notifications  # evaluate() dispatches once the lock is released
                return
        self._dispatch(notifications)

    def _process(self, data: MetricsData | None) -> list[Alert]:
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
        for rule in self._rules.values():
            for attributes, point in index.get(rule.instrument.lower(), ()):
                if not rule.matches(attributes):
                    continue
                key = (rule.name, _label_key(attributes))
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

    @staticmethod
    def _measure(rule: AlertRule, series: _Series, point: Any, now: float) -> float | None:
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
        try:
            self._fired.add(1, {"alert.name": rule.name, "alert.severity": rule.severity})
        except Exception:  # telemetry never breaks alerting
            _log.debug("otelres: counting an alert failed", exc_info=True)

    def _alert(self, rule: AlertRule, series: _Series, status: Any, resolved_at: float | None) -> Alert:
        labels = types.MappingProxyType(dict(series.labels))
        digest = hashlib.sha256(repr((rule.name, _label_key(series.labels))).encode()).hexdigest()
        return Alert(
            name=rule.name,
            status=status,
            severity=rule.severity,
            summary=rule.describe(series.value, labels),
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
        if not notifications:
            return
        with self._state_lock:
            handlers = list(self._handlers)
        for alert in notifications:
            for handler in handlers:
                name = _handler_name(handler)
                try:
                    handler(alert)
                    outcome = "success"
                except Exception:
                    outcome = "failure"
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
                            "alert.outcome": outcome,
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


def _handler_name(handler: AlertHandler) -> str:
    name = getattr(handler, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(handler, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(handler).__name__
