"""The metrics facade: counters, gauges, histograms and timers as real OTel instruments."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from otelres import config
from otelres.monitoring import MetricsCollector, get_metrics_collector
from otelres.testing import TelemetryCapture, capture_telemetry


@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    """Private in-memory SDK providers, injected into the collector under test."""
    return capture_telemetry(install_global=False)


@pytest.fixture(name="metrics")
def _metrics(capture: TelemetryCapture) -> MetricsCollector:
    return MetricsCollector(meter_provider=capture.meter_provider)


def test_increment_adds_to_a_counter_per_attribute_set(
    metrics: MetricsCollector, capture: TelemetryCapture
) -> None:
    """increment() adds 1 (or the value given) to the counter series of its attributes."""
    metrics.increment("orders.placed")
    metrics.increment("orders.placed", 2, {"side": "buy"})
    metrics.increment("orders.placed", attributes={"side": "buy"})
    assert capture.value("orders.placed", side="buy") == 3
    assert {tuple(p.attributes.items()): p.value for p in capture.points("orders.placed")} == {
        (): 1,
        (("side", "buy"),): 3,
    }


def test_gauge_reports_the_last_value_per_attribute_set(
    metrics: MetricsCollector, capture: TelemetryCapture
) -> None:
    """gauge() and its alias set() report the last value set for each attribute set."""
    metrics.gauge("portfolio.value", 100.0, {"currency": "USD"})
    metrics.set("portfolio.value", 120.5, {"currency": "USD"})
    metrics.set("portfolio.value", 7.0, {"currency": "BTC"})
    assert capture.value("portfolio.value", currency="USD") == 120.5
    assert capture.value("portfolio.value", currency="BTC") == 7.0


def test_record_fills_a_histogram(metrics: MetricsCollector, capture: TelemetryCapture) -> None:
    """record() records values into a histogram with the unit given at first use."""
    metrics.record("order.size", 2.0, unit="{lot}")
    metrics.record("order.size", 4.0)
    (point,) = capture.points("order.size")
    assert (point.count, point.sum, point.unit) == (2, 6.0, "{lot}")


def test_timer_context_manager_records_seconds(metrics: MetricsCollector, capture: TelemetryCapture) -> None:
    """A timer block records its duration in seconds into a histogram with unit s."""
    with metrics.timer("operation.duration", {"strategy": "ma"}) as timer:
        time.sleep(0.02)
    (point,) = capture.points("operation.duration")
    assert point.unit == "s"
    assert point.count == 1
    assert point.attributes == {"strategy": "ma"}
    assert 0.015 < point.sum < 2.0
    assert timer.elapsed == point.sum
    assert 0.005 in point.explicit_bounds


def test_timer_records_error_type_and_reraises(metrics: MetricsCollector, capture: TelemetryCapture) -> None:
    """A block that raises is recorded with error.type and the exception propagates."""
    with pytest.raises(KeyError), metrics.timer("operation.duration"):
        raise KeyError("x")
    (point,) = capture.points("operation.duration")
    assert point.attributes == {"error.type": "KeyError"}


def test_timer_decorates_sync_functions(metrics: MetricsCollector, capture: TelemetryCapture) -> None:
    """@timer on a function measures every call and keeps its name and result."""

    @metrics.timer("compute.duration")
    def compute(x: int) -> int:
        return x * 2

    assert compute(21) == 42
    assert compute(1) == 2
    assert compute.__name__ == "compute"
    assert capture.points("compute.duration")[0].count == 2


async def test_timer_decorates_async_functions(metrics: MetricsCollector, capture: TelemetryCapture) -> None:
    """@timer on a coroutine function measures the awaited time, concurrent calls each on their own."""

    @metrics.timer("fetch.duration")
    async def fetch(delay: float) -> float:
        await asyncio.sleep(delay)
        return delay

    assert await asyncio.gather(fetch(0.01), fetch(0.03)) == [0.01, 0.03]
    (point,) = capture.points("fetch.duration")
    assert point.count == 2
    assert 0.035 < point.sum < 3.0


async def test_timer_works_with_async_with(metrics: MetricsCollector, capture: TelemetryCapture) -> None:
    """async with metrics.timer(...) records like the sync form."""
    async with metrics.timer("step.duration"):
        await asyncio.sleep(0)
    assert capture.points("step.duration")[0].count == 1


def test_instruments_are_created_once_per_name(metrics: MetricsCollector) -> None:
    """The same name reuses its cached instrument."""
    metrics.increment("a.count")
    counter = metrics._counters["a.count"]
    metrics.increment("a.count")
    assert metrics._counters["a.count"] is counter
    assert metrics.timer("a.duration")._histogram is metrics.timer("a.duration")._histogram


def test_invalid_names_are_refused_with_the_name(metrics: MetricsCollector) -> None:
    """A name OTel would reject raises ValueError naming it."""
    with pytest.raises(ValueError, match="'9 lives'"):
        metrics.increment("9 lives")


def test_a_name_keeps_its_kind(metrics: MetricsCollector) -> None:
    """Using a counter's name for a gauge raises ValueError saying what it is."""
    metrics.increment("thing")
    with pytest.raises(ValueError, match="already used for a counter"):
        metrics.gauge("thing", 1)


def test_a_name_keeps_its_kind_whatever_its_case(metrics: MetricsCollector) -> None:
    """OTel names ignore case, so "Orders" cannot become a gauge once "orders" is a counter."""
    metrics.increment("orders")
    with pytest.raises(ValueError, match="already used for a counter"):
        metrics.gauge("Orders", 1)


def test_namespace_prefixes_every_name(capture: TelemetryCapture) -> None:
    """namespace= is prepended to the instrument names."""
    MetricsCollector(meter_provider=capture.meter_provider, namespace="bot.").increment("orders")
    assert capture.value("bot.orders") == 1


def test_disabled_collector_records_nothing(capture: TelemetryCapture) -> None:
    """enabled=False makes every call a no-op that still accepts the same arguments."""
    metrics = MetricsCollector(meter_provider=capture.meter_provider, enabled=False)
    metrics.increment("x")
    metrics.gauge("y", 1)
    with metrics.timer("z"):
        pass
    assert capture.points() == []


def test_global_collector_follows_configuration_and_global_provider(telemetry: TelemetryCapture) -> None:
    """get_metrics_collector() is one collector on the global provider; metrics_enabled=false disables it."""
    metrics = get_metrics_collector()
    assert get_metrics_collector() is metrics
    metrics.increment("seed.operations_completed")
    assert telemetry.value("seed.operations_completed") == 1

    from otelres.monitoring import _metrics

    _metrics._reset_collector()
    config.set_current(config.config_from_dict({"monitoring": {"metrics_enabled": False}}, environ={}))
    assert get_metrics_collector().enabled is False


async def test_failing_async_calls_keep_their_attributes_and_the_class_name(
    metrics: MetricsCollector, capture: TelemetryCapture
) -> None:
    """A decorated coroutine that raises records its attributes plus error.type = the class's plain name."""

    class ExchangeDown(Exception):
        pass

    @metrics.timer("fetch.duration", {"exchange": "kraken"})
    async def fetch() -> None:
        await asyncio.sleep(0)
        raise ExchangeDown

    with pytest.raises(ExchangeDown):
        await fetch()
    (point,) = capture.points("fetch.duration")
    assert point.attributes == {"exchange": "kraken", "error.type": "ExchangeDown"}


async def test_one_timer_shared_by_overlapping_tasks_measures_each_block(
    metrics: MetricsCollector, capture: TelemetryCapture
) -> None:
    """A module-level timer used with async with by overlapping tasks records each task's own duration."""
    timed = metrics.timer("fetch.duration")

    async def first() -> None:  # opens first and closes first
        async with timed:
            await asyncio.sleep(0.4)

    async def second() -> None:  # its own series: error.type
        await asyncio.sleep(0.2)
        with contextlib.suppress(KeyError):
            async with timed:
                await asyncio.sleep(0.4)
                raise KeyError("x")

    # One shared stack of starts would pair the first block's exit with the second block's
    # start and record about 0.2 s for it.
    await asyncio.gather(first(), second())
    points = capture.points("fetch.duration")
    (ok,) = [p for p in points if not p.attributes]
    (failed,) = [p for p in points if p.attributes]
    assert ok.sum >= 0.38
    assert failed.sum >= 0.38


def test_one_timer_shared_by_threads_measures_each_block(
    metrics: MetricsCollector, capture: TelemetryCapture
) -> None:
    """The same timer in overlapping with-blocks of two threads records each thread's own duration."""
    import threading

    timed = metrics.timer("work.duration")
    opened = threading.Event()
    closed = threading.Event()

    def second() -> None:  # opens after the main block and closes after it
        opened.wait(5)
        time.sleep(0.2)
        with contextlib.suppress(KeyError), timed:
            closed.wait(5)
            time.sleep(0.2)
            raise KeyError("x")

    worker = threading.Thread(target=second)
    worker.start()
    with timed:
        opened.set()
        time.sleep(0.4)
    closed.set()
    worker.join(5)
    points = capture.points("work.duration")
    (ok,) = [p for p in points if not p.attributes]
    (failed,) = [p for p in points if p.attributes]
    assert ok.sum >= 0.38
    assert failed.sum >= 0.38
