"""Alert rules and the alerts they raise.

An :class:`AlertRule` is a threshold on any OpenTelemetry instrument, checked against every
point of that instrument whose attributes match the rule's filter (one alert per matching
attribute set); :func:`health_red` and :func:`breaker_open` build the rules for otelres' own
health and breaker gauges. An :class:`Alert` is what handlers receive.
"""

from __future__ import annotations

import operator
import re
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Alert", "AlertRule", "Comparison", "Statistic", "breaker_open", "health_red"]

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
Statistic = Literal["value", "count", "sum", "mean", "min", "max"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_STATISTICS = ("value", "count", "sum", "mean", "min", "max")
_INSTRUMENT_NAME = re.compile(r"[a-zA-Z][-_./a-zA-Z0-9]{0,254}")
_PROMETHEUS_SUFFIXES = ("_total", "_seconds", "_bytes", "_ratio", "_bucket", "_count", "_sum")


def prometheus_twin(rule_instrument: str, reported: Iterable[str]) -> str | None:
    """The reported OTel name that *rule_instrument* is the Prometheus spelling of, if any.

    ``otelres_breaker_calls_total`` is how Prometheus shows ``otelres.breaker.calls``; rules
    read the OTel pipeline, which knows only the latter.
    """
    wanted = rule_instrument.lower()
    for suffix in _PROMETHEUS_SUFFIXES:
        if wanted.endswith(suffix):
            wanted = wanted[: -len(suffix)]
            break
    wanted = wanted.replace(".", "_")
    for name in reported:
        if name.replace(".", "_") == wanted:
            return name
    return None


def label_key(attributes: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable, order-independent key for an attribute set."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items()))


@dataclass(frozen=True)
class AlertRule:
    """A threshold on an OTel instrument: ``<statistic of instrument> <comparison> <threshold>``.

    ::

        AlertRule("order_rejects", "bot.orders.rejected", ">=", 3, window_seconds=300,
                  attributes={"exchange": ("kraken", "binance")}, for_seconds=60)

    reads "more than 2 rejected orders within 5 minutes, on Kraken or Binance, for a minute".
    Invalid arguments raise ``ValueError`` naming the argument.
    """

    name: str
    """Unique within an :class:`AlertManager`; the ``name`` of the alerts it raises."""
    instrument: str
    """The instrument name (any meter, any kind), matched case-insensitively."""
    comparison: Comparison = ">"
    """How the measured value is compared with :attr:`threshold`."""
    threshold: float = 0.0
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """A filter: a point matches when each listed attribute has the given value, or one of the
    values when a tuple, list or set is given. Each matching attribute set is its own alert."""
    exclude: Mapping[str, Any] = field(default_factory=dict)
    """The opposite filter: a point whose attribute has the given value (or one of the values)
    does not match, e.g. ``{"health.check.name": "overall"}``."""
    for_seconds: float = 0.0
    """How long the condition must hold before the alert fires (0: at the first evaluation);
    until then the alert is *pending*, like Prometheus' ``for``."""
    window_seconds: float | None = None
    """When set, compare the *increase* over the last window instead of the cumulative value:
    the failures of the last 5 minutes, not since start. A series first seen after the
    manager's first evaluation counts from zero; one already there counts from that look."""
    statistic: Statistic = "value"
    """What of a point is compared. Sums and gauges have one value (``value``). Histograms:
    ``count``, ``sum``, ``mean`` (also ``value``; over a window ``Δsum / Δcount``) and, without
    a window, ``min`` and ``max``."""
    severity: str = "warning"
    """Passed on to handlers (``critical`` alerts are logged at ERROR by :class:`LogAlertHandler`)."""
    summary: str = ""
    """A ``str.format`` template with ``{name}``, ``{value}``, ``{threshold}``, ``{instrument}``
    and ``{labels[attribute.name]}``; empty: a readable default such as
    ``bot.orders.rejected{exchange=kraken} >= 3 (now 4)``."""
    resolved_summary: str = ""
    """The template of the *resolved* notification's summary (same fields, ``{value}`` being
    the last value seen). Empty: ``no longer true: <summary>`` for a rule with a :attr:`summary`,
    else a readable default such as ``bot.orders.rejected{exchange=kraken} >= 3 no longer
    holds (now 1)``, so a resolved alert never reads as if it still fired."""

    def __post_init__(self) -> None:
        where = f"AlertRule {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"AlertRule(name): expected a non-empty string, got {self.name!r}")
        if not isinstance(self.instrument, str) or not self.instrument:
            raise ValueError(f"{where}: instrument must be a non-empty string, got {self.instrument!r}")
        if _INSTRUMENT_NAME.fullmatch(self.instrument) is None:
            raise ValueError(
                f"{where}: instrument {self.instrument!r} is not an OpenTelemetry instrument name "
                "(a letter, then letters, digits, '_', '.', '-' or '/'), so it could never match"
            )
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
        if not isinstance(self.exclude, Mapping):
            raise ValueError(f"{where}: exclude must be a mapping, got {self.exclude!r}")
        object.__setattr__(self, "attributes", _filter(self.attributes))
        object.__setattr__(self, "exclude", _filter(self.exclude))

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """Whether a point with *attributes* passes this rule's attribute filters."""
        for key, wanted in self.attributes.items():
            if key not in attributes or not _is(attributes[key], wanted):
                return False
        return not any(
            key in attributes and _is(attributes[key], unwanted)
            for key, unwanted in self.exclude.items()
        )

    def holds(self, value: float) -> bool:
        """Whether *value* meets the condition."""
        return _COMPARE[self.comparison](value, self.threshold)

    def describe(
        self, value: float | None, labels: Mapping[str, Any], status: Literal["firing", "resolved"] = "firing"
    ) -> str:
        """The summary of a *status* notification of this rule for *value* and *labels*."""
        if status == "resolved":
            if self.resolved_summary:
                return self._fill(self.resolved_summary, value, labels)
            if self.summary:
                return "no longer true: " + self._fill(self.summary, value, labels)
        elif self.summary:
            return self._fill(self.summary, value, labels)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        what = self.instrument if self.statistic == "value" else f"{self.statistic}({self.instrument})"
        if self.window_seconds is not None:
            what = f"increase of {what} over {self.window_seconds:g}s"
        current = "no value" if value is None else f"{value:g}"
        verdict = " no longer holds" if status == "resolved" else ""
        return f"{what}{{{shown}}} {self.comparison} {self.threshold:g}{verdict} (now {current})"

    def _fill(self, template: str, value: float | None, labels: Mapping[str, Any]) -> str:
        """*template* filled in; as written when a field it names is missing or misformatted."""
        try:
            return template.format(
                name=self.name,
                value=value,
                threshold=self.threshold,
                instrument=self.instrument,
                labels=labels,
            )
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            return template


def _filter(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Attribute filters with every collection of allowed values turned into a frozenset."""
    return types.MappingProxyType(
        {
            str(k): frozenset(v) if isinstance(v, (tuple, list, set, frozenset)) else v
            for k, v in values.items()
        }
    )


def _is(have: Any, wanted: Any) -> bool:
    return have in wanted if isinstance(wanted, frozenset) else bool(have == wanted)


def health_red(
    check: str | None = None,
    *,
    for_seconds: float = 60.0,
    name: str | None = None,
    severity: str = "critical",
) -> AlertRule:
    """A rule that fires when health check *check* (any check when None) is RED for *for_seconds*.

    Reads the ``otelres.health.status`` gauge (0 green, 1 yellow, 2 red) that
    ``otelres.health`` publishes, one alert per ``health.check.name``. With no *check*, the
    ``overall`` series is left out, so one RED check raises one alert, not two.
    """
    return AlertRule(
        name=name or (f"health_red:{check}" if check else "health_red"),
        instrument="otelres.health.status",
        comparison=">=",
        threshold=2,
        attributes={"health.check.name": check} if check else {},
        exclude={} if check else {"health.check.name": "overall"},
        for_seconds=for_seconds,
        severity=severity,
        summary="health check {labels[health.check.name]} is RED",
        resolved_summary="health check {labels[health.check.name]} is no longer RED",
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
        resolved_summary="circuit breaker {labels[breaker.name]} is no longer {labels[breaker.state]}",
    )


@dataclass(frozen=True)
class Alert:
    """One notification about one alert: what fired (or resolved), where, and the value seen."""

    name: str
    """The rule's name."""
    status: Literal["firing", "resolved"]
    severity: str
    summary: str
    """What happened, in words: the rule's summary filled in for a firing alert, its resolved
    summary for a resolved one (``circuit breaker kraken is no longer open``)."""
    instrument: str
    labels: Mapping[str, Any]
    """The attributes of the series that fired (the breaker, the check, the exchange...)."""
    value: float | None
    """The value measured at the last evaluation (None once the series disappeared)."""
    comparison: str
    threshold: float
    started_at: float
    """Unix time (seconds) at which the alert started firing."""
    resolved_at: float | None
    """Unix time (seconds) at which it resolved; None while firing."""
    fingerprint: str
    """16 hex digits identifying the alert (rule plus labels) across notifications: use it to
    de-duplicate on the receiving side."""
    notification: int
    """1 for the first firing notification, 2 and up for re-notifications."""
    service: str | None = None
    """``service.name`` of the process that raised it."""

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
