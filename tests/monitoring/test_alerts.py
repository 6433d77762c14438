"""Alerts: rules evaluated from the OTel metric pipeline, with pending, firing and resolved states."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

from otelres.monitoring import (
    Alert,
    AlertManager,
    AlertRule,
    MetricsCollector,
    breaker_open,
    health_red,
)
from otelres.testing import FakeClock, TelemetryCapture

WALL_START = 1_700_000_000.0


class Rig:
    """An AlertManager on a real SDK MeterProvider, a fake clock, and the notifications it sent."""

    def __init__(self, rules: Iterable[AlertRule], **options: Any) -> None:
        self.clock = FakeClock()
        self.sent: list[Alert] = []
        self.manager = AlertManager(
            rules,
            [self.sent.append],
            clock=self.clock,
            wall_clock=lambda: WALL_START + self.clock(),
            service_name="bot",
            **options,
        )
        self.provider = MeterProvider(metric_readers=[self.manager.reader])
        self.metrics = MetricsCollector(meter_provider=self.provider)

    def step(self, seconds: float = 0.0) -> list[Alert]:
        """Advance the clock by *seconds*, evaluate, and return the notifications of this round."""
        self.clock.advance(seconds)
        return self.manager.evaluate()

    def gauge(self, name: str, values: dict[tuple[tuple[str, Any], ...], float]) -> None:
        """An observable gauge reporting *values* (attributes -> value) as they are at collection."""

        def observe(options: CallbackOptions) -> list[Observation]:
            return [Observation(v, dict(attrs)) for attrs, v in values.items()]

        self.provider.get_meter("test").create_observable_gauge(name, [observe])


@pytest.fixture(name="rig_factory")
def _rig_factory() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(rules: Iterable[AlertRule], **options: Any) -> Rig:
        rig = Rig(rules, **options)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.provider.shutdown()


def test_threshold_fires_only_after_its_for_duration(rig_factory: Callable[..., Rig]) -> None:
    """A condition must hold for for_seconds before the alert fires, and it notifies once."""
    rule = AlertRule("errors", "app.errors", ">", 2, for_seconds=30, severity="critical")
    rig = rig_factory([rule])
    rig.metrics.increment("app.errors", 3)
    assert rig.step() == []
    assert rig.step(29) == []
    (alert,) = rig.step(1)
    assert (alert.name, alert.status, alert.severity, alert.value) == ("errors", "firing", "critical", 3)
    assert alert.notification == 1
    assert alert.started_at == WALL_START + 1030
    assert alert.service == "bot"
    assert rig.step(10) == []
    assert [a.name for a in rig.manager.firing()] == ["errors"]


def test_pending_alert_that_clears_never_fires(rig_factory: Callable[..., Rig]) -> None:
    """A condition that stops holding before for_seconds elapse sends nothing at all."""
    values = {(): 5.0}
    rig = rig_factory([AlertRule("lag", "app.lag", ">", 1, for_seconds=60)])
    rig.gauge("app.lag", values)
    rig.step()
    values[()] = 0.0
    assert rig.step(30) == []
    values[()] = 5.0
    assert rig.step(40) == []
    assert rig.sent == []


def test_resolution_is_notified_once(rig_factory: Callable[..., Rig]) -> None:
    """When a firing condition stops holding, one resolved notification follows."""
    values = {(): 5.0}
    rig = rig_factory([AlertRule("lag", "app.lag", ">=", 5)])
    rig.gauge("app.lag", values)
    (firing,) = rig.step()
    values[()] = 1.0
    (resolved,) = rig.step(5)
    assert resolved.status == "resolved"
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.resolved_at == WALL_START + 1005
    assert resolved.value == 1.0
    assert rig.step(5) == []
    assert rig.manager.firing() == []


def test_send_resolved_false_skips_resolution(rig_factory: Callable[..., Rig]) -> None:
    """With send_resolved=False only firing notifications are sent."""
    values = {(): 5.0}
    rig = rig_factory([AlertRule("lag", "app.lag", ">", 1)], send_resolved=False)
    rig.gauge("app.lag", values)
    rig.step()
    values[()] = 0.0
    rig.step(1)
    assert [a.status for a in rig.sent] == ["firing"]


def test_firing_alert_is_renotified_at_the_interval(rig_factory: Callable[..., Rig]) -> None:
    """An alert that keeps firing is notified again every renotify_seconds, numbered."""
    rig = rig_factory([AlertRule("errors", "app.errors", ">", 0)], renotify_seconds=300)
    rig.metrics.increment("app.errors")
    rig.step()
    assert rig.step(299) == []
    (again,) = rig.step(1)
    assert again.notification == 2
    assert rig.step(100) == []
    assert rig.step(200)[0].notification == 3


def test_each_matching_attribute_set_is_its_own_alert(rig_factory: Callable[..., Rig]) -> None:
    """The attribute filter selects series; each selected series fires separately."""
    rule = AlertRule("rejects", "app.rejects", ">", 1, attributes={"exchange": ("kraken", "binance")})
    rig = rig_factory([rule])
    rig.metrics.increment("app.rejects", 5, {"exchange": "kraken"})
    rig.metrics.increment("app.rejects", 5, {"exchange": "binance"})
    rig.metrics.increment("app.rejects", 5, {"exchange": "coinbase"})
    alerts = rig.step()
    assert sorted(a.labels["exchange"] for a in alerts) == ["binance", "kraken"]
    assert len({a.fingerprint for a in alerts}) == 2


def test_window_compares_the_increase_not_the_total(rig_factory: Callable[..., Rig]) -> None:
    """With window_seconds the rule sees how much a counter grew within the window."""
    rule = AlertRule("burst", "app.failures", ">=", 3, window_seconds=60)
    rig = rig_factory([rule])
    rig.metrics.increment("app.failures", 10)
    assert rig.step() == []  # 10 since before the manager looked: unknown when
    rig.metrics.increment("app.failures", 2)
    assert rig.step(30) == []
    rig.metrics.increment("app.failures", 1)
    (alert,) = rig.step(20)
    assert alert.value == 3
    (resolved,) = rig.step(120)
    assert (resolved.status, resolved.value) == ("resolved", 0)


def test_series_appearing_after_the_first_evaluation_counts_from_zero(
    rig_factory: Callable[..., Rig],
) -> None:
    """A counter series first seen after the manager started counts its whole value as increase."""
    rig = rig_factory([AlertRule("burst", "app.failures", ">=", 3, window_seconds=60)])
    rig.step()
    rig.metrics.increment("app.failures", 4, {"exchange": "kraken"})
    (alert,) = rig.step(10)
    assert alert.value == 4


def test_histogram_mean_over_a_window(rig_factory: Callable[..., Rig]) -> None:
    """A timer histogram can be alerted on by its mean duration within a window."""
    rule = AlertRule("slow", "app.duration", ">", 0.5, window_seconds=60, statistic="mean")
    rig = rig_factory([rule])
    rig.step()
    for seconds in (0.2, 1.0, 1.2):
        rig.metrics.record("app.duration", seconds, unit="s")
    (alert,) = rig.step(5)
    assert alert.value == pytest.approx(0.8)


def test_histogram_max_without_window(rig_factory: Callable[..., Rig]) -> None:
    """Without a window, statistic max compares the largest value recorded."""
    rig = rig_factory([AlertRule("spike", "app.duration", ">", 2, statistic="max")])
    rig.metrics.record("app.duration", 1.0)
    assert rig.step() == []
    rig.metrics.record("app.duration", 3.0)
    assert rig.step(1)[0].value == 3.0


def test_health_red_fires_after_its_duration(rig_factory: Callable[..., Rig]) -> None:
    """health_red fires per check once otelres.health.status has been 2 for for_seconds (not for overall)."""
    values = {
        (("health.check.name", "exchange"),): 2.0,
        (("health.check.name", "risk"),): 1.0,
        (("health.check.name", "overall"),): 2.0,
    }
    rig = rig_factory([health_red(for_seconds=60)])
    rig.gauge("otelres.health.status", values)
    assert rig.step() == []
    (alert,) = rig.step(60)
    assert alert.labels == {"health.check.name": "exchange"}
    assert alert.summary == "health check exchange is RED"
    values[(("health.check.name", "exchange"),)] = 0.0
    assert rig.step(10)[0].status == "resolved"


def test_exclude_filter_drops_matching_series(rig_factory: Callable[..., Rig]) -> None:
    """A rule's exclude filter keeps series with the excluded attribute values from alerting."""
    values = {(("queue", "a"),): 9.0, (("queue", "b"),): 9.0, (("queue", "c"),): 9.0}
    rig = rig_factory([AlertRule("deep", "app.queue", ">", 5, exclude={"queue": ("b", "c")})])
    rig.gauge("app.queue", values)
    (alert,) = rig.step()
    assert alert.labels == {"queue": "a"}


def test_breaker_open_fires_for_a_real_breaker(rig_factory: Callable[..., Rig]) -> None:
    """breaker_open fires when an otelres CircuitBreaker on the same provider opens, and resolves on reset."""
    from otelres.resilience import CircuitBreaker

    rig = rig_factory([breaker_open()])
    breaker = CircuitBreaker("kraken_api", failure_threshold=2, meter_provider=rig.provider, clock=rig.clock)

    def fail() -> None:
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    (alert,) = rig.step()
    assert alert.labels["breaker.name"] == "kraken_api"
    assert alert.summary == "circuit breaker kraken_api is open"
    breaker.reset()
    (resolved,) = rig.step(1)
    assert resolved.status == "resolved"


def test_resolved_summaries_never_read_as_firing(rig_factory: Callable[..., Rig]) -> None:
    """Resolved alerts use resolved_summary, else 'no longer true: <summary>', else '... no longer holds'."""
    values = {(("exchange", "kraken"),): 9.0}
    rig = rig_factory(
        [
            AlertRule("custom", "app.lag", ">", 5, summary="{labels[exchange]} lags {value:g}s"),
            AlertRule("own", "app.lag", ">", 5, summary="{labels[exchange]} lags",
                      resolved_summary="{labels[exchange]} caught up ({value:g}s)"),
            AlertRule("plain", "app.lag", ">", 5),
        ]
    )
    rig.gauge("app.lag", values)
    firing = {a.name: a.summary for a in rig.step()}
    assert firing == {"custom": "kraken lags 9s", "own": "kraken lags",
                      "plain": "app.lag{exchange=kraken} > 5 (now 9)"}
    values[(("exchange", "kraken"),)] = 1.0
    resolved = {a.name: (a.status, a.summary) for a in rig.step(1)}
    assert resolved == {
        "custom": ("resolved", "no longer true: kraken lags 1s"),
        "own": ("resolved", "kraken caught up (1s)"),
        "plain": ("resolved", "app.lag{exchange=kraken} > 5 no longer holds (now 1)"),
    }


def test_health_red_resolves_as_no_longer_red(rig_factory: Callable[..., Rig]) -> None:
    """health_red's resolved notification says the check is no longer RED."""
    values = {(("health.check.name", "redis"),): 2.0}
    rig = rig_factory([health_red(for_seconds=0)])
    rig.gauge("otelres.health.status", values)
    (alert,) = rig.step()
    values[(("health.check.name", "redis"),)] = 0.0
    (resolved,) = rig.step(1)
    assert (alert.summary, resolved.summary) == ("health check redis is RED", "health check redis is no longer RED")


def test_disappearing_series_resolves(rig_factory: Callable[..., Rig]) -> None:
    """An alert whose series is no longer reported is resolved."""
    values = {(("queue", "a"),): 9.0}
    rig = rig_factory([AlertRule("deep", "app.queue", ">", 5)])
    rig.gauge("app.queue", values)
    rig.step()
    values.clear()
    (resolved,) = rig.step(1)
    assert (resolved.status, resolved.labels) == ("resolved", {"queue": "a"})


def test_failing_handler_never_stops_the_others(
    rig_factory: Callable[..., Rig], telemetry: TelemetryCapture
) -> None:
    """A raising handler is logged and counted as a failure; the handlers after it still run."""

    def broken(alert: Alert) -> None:
        raise RuntimeError("handler down")

    after: list[Alert] = []
    rig = rig_factory([AlertRule("handler_check", "app.errors", ">", 0)])
    rig.manager.add_handler(broken)
    rig.manager.add_handler(after.append)
    rig.metrics.increment("app.errors")
    rig.step()
    assert len(after) == 1
    assert len(rig.sent) == 1
    assert telemetry.value(
        "otelres.alerts.notifications", **{"alert.name": "handler_check", "alert.outcome": "failure"}
    ) == 1
    assert telemetry.value(
        "otelres.alerts.notifications",
        **{"alert.name": "handler_check", "alert.handler": "broken", "alert.outcome": "failure"},
    ) == 1


def test_fired_counter_counts_alerts_that_start_firing(
    rig_factory: Callable[..., Rig], telemetry: TelemetryCapture
) -> None:
    """otelres.alerts.fired counts each alert once when it starts firing, not re-notifications."""
    rig = rig_factory([AlertRule("counted", "app.errors", ">", 0, severity="critical")], renotify_seconds=1)
    rig.metrics.increment("app.errors", attributes={"a": "1"})
    rig.metrics.increment("app.errors", attributes={"a": "2"})
    rig.step()
    rig.step(5)
    points = telemetry.points("otelres.alerts.fired", **{"alert.name": "counted"})
    assert [(p.value, p.attributes["alert.severity"]) for p in points] == [(2, "critical")]


def test_any_collection_of_the_reader_evaluates(rig_factory: Callable[..., Rig]) -> None:
    """A collection triggered through the provider (force_flush) evaluates the rules too."""
    rig = rig_factory([AlertRule("errors", "app.errors", ">", 0)])
    rig.metrics.increment("app.errors")
    rig.provider.force_flush()
    assert [a.name for a in rig.sent] == ["errors"]


def test_evaluate_needs_a_registered_reader() -> None:
    """Evaluating before the reader is on a MeterProvider raises an error saying how to register it."""
    manager = AlertManager([AlertRule("x", "y")], service_name="bot")
    with pytest.raises(RuntimeError, match=r"metric_readers=\[manager.reader"):
        manager.evaluate()


def test_background_thread_evaluates_until_stopped(rig_factory: Callable[..., Rig]) -> None:
    """start() evaluates every interval in a thread; stop() ends it."""
    got = threading.Event()
    rig = rig_factory([AlertRule("errors", "app.errors", ">", 0)], interval_seconds=0.02)
    rig.manager.add_handler(lambda alert: got.set())
    rig.metrics.increment("app.errors")
    with rig.manager:
        assert got.wait(5)
    assert rig.manager._thread is None


def test_summary_template_gets_value_threshold_and_labels(rig_factory: Callable[..., Rig]) -> None:
    """A summary template is filled with the value, the threshold and the labels."""
    rule = AlertRule(
        "rejects", "app.rejects", ">", 1, summary="{labels[exchange]} rejected {value:g} > {threshold:g}"
    )
    rig = rig_factory([rule])
    rig.metrics.increment("app.rejects", 4, {"exchange": "kraken"})
    assert rig.step()[0].summary == "kraken rejected 4 > 1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"comparison": "=>"}, "comparison"),
        ({"for_seconds": -1}, "for_seconds"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"statistic": "p99"}, "statistic"),
        ({"statistic": "max", "window_seconds": 60}, "cannot be taken over a window"),
        ({"threshold": "high"}, "threshold"),
    ],
)
def test_invalid_rules_are_refused_naming_the_argument(kwargs: dict[str, Any], message: str) -> None:
    """AlertRule raises ValueError naming the argument that is wrong."""
    with pytest.raises(ValueError, match=message):
        AlertRule("r", "app.x", **kwargs)


def test_rule_names_are_unique() -> None:
    """Adding a second rule with the same name is refused."""
    manager = AlertManager([AlertRule("r", "a")], service_name="bot")
    with pytest.raises(ValueError, match="exists already"):
        manager.add_rule(AlertRule("r", "b"))


def test_health_red_fires_for_a_real_health_checker(rig_factory: Callable[..., Rig]) -> None:
    """health_red fires for a check an otelres HealthChecker on the same provider reports RED."""
    from otelres import config
    from otelres.health import HealthChecker, HealthStatus, health_check

    @health_check("alerts-exchange", register=False)
    def exchange() -> HealthStatus:
        return HealthStatus.RED

    rig = rig_factory([health_red("alerts-exchange", for_seconds=30)])
    checker = HealthChecker([exchange], config=config.Config(), meter_provider=rig.provider)
    checker.run_sync()
    assert rig.step() == []
    (alert,) = rig.step(30)
    assert alert.labels == {"health.check.name": "alerts-exchange"}


def test_async_handler_runs_without_an_event_loop(rig_factory: Callable[..., Rig]) -> None:
    """An async def handler is awaited to completion when evaluation runs outside any event loop."""
    got: list[str] = []

    async def notify(alert: Alert) -> None:
        await asyncio.sleep(0)
        got.append(alert.status)

    rig = rig_factory([AlertRule("errors", "app.errors", ">", 0)])
    rig.manager.add_handler(notify)
    rig.metrics.increment("app.errors")
    rig.step()
    assert got == ["firing"]


async def test_async_handler_becomes_a_task_inside_a_running_loop(
    rig_factory: Callable[..., Rig], telemetry: TelemetryCapture
) -> None:
    """Evaluated from async code, an async handler runs as a task of that loop and is counted when done."""
    done = asyncio.Event()

    async def notify_async(alert: Alert) -> None:
        done.set()
        raise RuntimeError("pager down")

    rig = rig_factory([AlertRule("async_task_rule", "app.errors", ">", 0)])
    rig.manager.add_handler(notify_async)
    rig.metrics.increment("app.errors")
    rig.step()
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0)
    assert telemetry.value(
        "otelres.alerts.notifications",
        **{"alert.name": "async_task_rule", "alert.handler": "notify_async", "alert.outcome": "failure"},
    ) == 1


def test_a_rule_that_cannot_be_evaluated_never_breaks_collection(rig_factory: Callable[..., Rig]) -> None:
    """An error while evaluating is logged; the collection (here a provider flush) still succeeds."""
    rig = rig_factory([AlertRule("errors", "app.errors", ">", 0)])
    rig.metrics.increment("app.errors")

    def broken_measure(*args: Any) -> float:
        raise ArithmeticError("bad point")

    rig.manager._measure = broken_measure  # type: ignore[method-assign]
    assert rig.provider.force_flush() is True
    assert rig.step() == []


@pytest.mark.parametrize("instrument", ["bot orders", "9lives", "otelres.breaker.state{name=x}"])
def test_instrument_names_that_can_never_match_are_refused(instrument: str) -> None:
    """A rule on a name OpenTelemetry cannot report (spaces, PromQL selectors) is refused naming it."""
    with pytest.raises(ValueError, match=r"instrument .* is not an OpenTelemetry instrument name"):
        AlertRule("r", instrument)


def test_a_prometheus_spelled_instrument_gets_a_did_you_mean_warning_once(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    """A rule on otelres_..._total logs one warning naming the OTel instrument it meant."""
    rig = rig_factory([AlertRule("rejects", "app_orders_rejected_total", ">", 0)])
    rig.metrics.increment("app.orders.rejected")
    assert rig.step() == []
    assert rig.step(15) == []
    hints = [r.getMessage() for r in caplog.records if "did you mean" in r.getMessage()]
    assert hints == [
        "otelres: alert rule 'rejects' watches 'app_orders_rejected_total', which this pipeline "
        "does not report; rules use OpenTelemetry names: did you mean 'app.orders.rejected'?"
    ]


async def test_evaluate_async_keeps_the_event_loop_running(rig_factory: Callable[..., Rig]) -> None:
    """While a slow plain handler delivers, evaluate_async lets other tasks of the loop run."""
    rig = rig_factory([AlertRule("errors", "app.errors", ">", 0)])
    rig.metrics.increment("app.errors")

    def slow(alert: Alert) -> None:
        time.sleep(0.4)  # a webhook sitting through its timeout

    rig.manager.add_handler(slow)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    try:
        sent = await rig.manager.evaluate_async()
    finally:
        beating.cancel()
    assert [a.name for a in sent] == ["errors"]
    assert len(rig.sent) == 1
    assert ticks >= 10  # about 40 if the loop never stalled; 0 with the blocking evaluate()


async def test_evaluate_async_awaits_async_handlers_and_survives_failures(
    rig_factory: Callable[..., Rig], telemetry: TelemetryCapture
) -> None:
    """An async def handler is awaited before evaluate_async returns, and a failing handler stops no other."""
    rig = rig_factory([AlertRule("async_errors", "app.errors", ">", 0)])
    rig.metrics.increment("app.errors")
    awaited: list[str] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("handler down")

    async def pager(alert: Alert) -> None:
        await asyncio.sleep(0.01)
        awaited.append(alert.name)

    rig.manager.add_handler(broken)
    rig.manager.add_handler(pager)
    await rig.manager.evaluate_async()
    assert awaited == ["async_errors"]
    assert len(rig.sent) == 1
    outcomes = sorted(
        (p.attributes["alert.handler"], p.attributes["alert.outcome"])
        for p in telemetry.points("otelres.alerts.notifications", {"alert.name": "async_errors"})
    )
    assert outcomes == [("append", "success"), ("broken", "failure"), ("pager", "success")]
