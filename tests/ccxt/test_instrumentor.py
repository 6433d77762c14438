"""CcxtInstrumentor as an OpenTelemetry instrumentor: idempotent, reversible, one client at a time,
and loadable by ``opentelemetry-instrument``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from otelres_instrumentation_ccxt import CcxtInstrumentor

from otelres.testing import ExchangeServer, TelemetryCapture
from tests.ccxt.conftest import use_config

pytestmark = pytest.mark.integration


def _snapshot() -> dict[tuple[type[Any], str], Any]:
    """Every attribute of every exchange class (and the base constructor), by identity."""
    from ccxt.base.exchange import BaseExchange

    seen: dict[tuple[type[Any], str], Any] = {}
    stack: list[type[Any]] = [BaseExchange]
    while stack:
        cls = stack.pop()
        for name, value in vars(cls).items():
            seen[(cls, name)] = value
        stack.extend(cls.__subclasses__())
    return seen


def test_uninstrument_restores_every_method_and_camel_case_alias(
    instrument: Any, exchange: ExchangeServer
) -> None:
    """After instrument, construction (which re-points camelCase aliases) and uninstrument,
    every class attribute is the original object again."""
    exchange.client("kraken")  # aliases exist before instrumenting
    before = _snapshot()
    instrumentor = instrument()
    assert getattr(ccxt.kraken.fetch_ticker, "_otelres_ccxt_wrapper", False)
    client = exchange.client("kraken")
    assert client.fetchTicker.__func__ is ccxt.kraken.fetch_ticker
    async_client = ccxt.async_support.binance()
    assert getattr(type(async_client).fetchTicker, "_otelres_ccxt_wrapper", False)
    instrumentor.uninstrument()
    after = _snapshot()
    changed = [key for key, value in before.items() if after.get(key) is not value]
    assert changed == []
    exchange.client("kraken")
    assert ccxt.kraken.fetchTicker is before[(ccxt.kraken, "fetchTicker")]
    assert not any(getattr(v, "_otelres_ccxt_wrapper", False) for v in _snapshot().values())


def test_clients_first_built_while_instrumented_keep_camel_case_methods(instrument: Any) -> None:
    """A class ccxt first constructs while instrumented keeps working aliases after uninstrument."""
    instrumentor = instrument()
    client = ccxt.coinmate()  # no client of this class was built before in this process
    assert getattr(type(client).fetchTicker, "_otelres_ccxt_wrapper", False)
    instrumentor.uninstrument()
    assert type(client).fetchTicker is type(client).fetch_ticker
    assert not getattr(type(client).fetchTicker, "_otelres_ccxt_wrapper", False)
    assert client.fetchTicker.__func__ is ccxt.coinmate.fetch_ticker


def test_instrument_and_uninstrument_are_idempotent(
    instrument: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """A second instrument() wraps nothing twice; a second uninstrument() changes nothing."""
    use_config()
    instrumentor = instrument()
    wrapped = ccxt.kraken.fetch_ticker
    instrumentor.instrument()
    assert ccxt.kraken.fetch_ticker is wrapped
    exchange.client("kraken").fetch_time()
    assert len(telemetry.spans("kraken fetch_time")) == 1
    instrumentor.uninstrument()
    original = ccxt.kraken.fetch_ticker
    instrumentor.uninstrument()
    assert ccxt.kraken.fetch_ticker is original
    telemetry.clear()
    exchange.client("kraken").fetch_time()
    assert telemetry.spans() == []


def test_instrument_client_traces_one_instance_only(
    exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """instrument_client wraps one client; others stay plain; uninstrument_client undoes it."""
    traced, plain = exchange.client("kraken"), exchange.client("kraken")
    CcxtInstrumentor.instrument_client(traced, resilience=False)
    CcxtInstrumentor.instrument_client(traced)
    traced.fetch_time()
    traced.fetchTime()
    plain.fetch_time()
    assert len(telemetry.spans("kraken fetch_time")) == 2
    assert len(telemetry.spans("GET Time")) == 2
    CcxtInstrumentor.uninstrument_client(traced)
    telemetry.clear()
    traced.fetch_time()
    assert telemetry.spans() == []


def test_instrument_client_options_belong_to_that_client(
    fresh_exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """resilience=False for one client leaves a client instrumented later with retries."""
    from otelres.testing import Fault

    use_config()
    bare, guarded = fresh_exchange.client("kraken"), fresh_exchange.client("kraken")
    CcxtInstrumentor.instrument_client(bare, resilience=False)
    CcxtInstrumentor.instrument_client(guarded)
    try:
        fresh_exchange.inject(Fault("http", status=503, venue="kraken", times=1))
        with pytest.raises(ccxt.ExchangeNotAvailable):
            bare.fetch_time()
        fresh_exchange.inject(Fault("http", status=503, venue="kraken", times=1))
        assert guarded.fetch_time() > 0
    finally:
        CcxtInstrumentor.uninstrument_client(bare)
        CcxtInstrumentor.uninstrument_client(guarded)
    assert fresh_exchange.count(path="/0/public/Time") == 3


async def test_instrument_client_works_for_async_clients(
    exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """An async client instrumented alone gets call and HTTP spans."""
    client = exchange.client("kraken", flavour="async")
    CcxtInstrumentor.instrument_client(client)
    try:
        await client.fetch_time()
    finally:
        await client.close()
        CcxtInstrumentor.uninstrument_client(client)
    (call,) = telemetry.spans("kraken fetch_time")
    (request,) = telemetry.spans("GET Time")
    assert request.parent is not None
    assert request.parent.span_id == call.context.span_id


def test_user_subclasses_are_traced_once(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """A subclass defined after instrument() overriding a method and calling super() is one span."""

    class MyKraken(ccxt.kraken):  # type: ignore[misc,name-defined]
        def fetch_time(self, params: dict[str, Any] | None = None) -> Any:
            return super().fetch_time(params or {})

    client = MyKraken({"urls": {"api": {"public": exchange.url, "private": exchange.url}}})
    client.fetch_time()
    assert len(telemetry.spans("kraken fetch_time")) == 1


def test_suppressed_instrumentation_records_nothing(
    instrumented: Any, exchange: ExchangeServer, telemetry: TelemetryCapture
) -> None:
    """Inside suppress_instrumentation() calls run without spans."""
    client = exchange.client("kraken")
    with suppress_instrumentation():
        client.fetch_time()
    assert telemetry.spans() == []


def test_resilience_is_off_when_asked(instrument: Any) -> None:
    """resilience=False leaves no guard; a malformed OTELRES_CCXT_RESILIENCE is named."""
    use_config()
    instrument(resilience=False)
    assert CcxtInstrumentor.guard("kraken") is None
    os.environ["OTELRES_CCXT_RESILIENCE"] = "perhaps"
    try:
        with pytest.raises(ValueError, match="OTELRES_CCXT_RESILIENCE"):
            instrument()
    finally:
        del os.environ["OTELRES_CCXT_RESILIENCE"]


def test_the_package_is_an_opentelemetry_instrumentor() -> None:
    """The entry point `ccxt` in group opentelemetry_instrumentor loads CcxtInstrumentor."""
    (entry,) = [e for e in metadata.entry_points(group="opentelemetry_instrumentor")
                if e.name == "ccxt"]
    assert entry.load() is CcxtInstrumentor
    assert CcxtInstrumentor().instrumentation_dependencies() == ("ccxt >= 4.3",)


def test_importing_the_package_does_not_import_ccxt() -> None:
    """`import otelres_instrumentation_ccxt` stays cheap: ccxt loads only on instrument()."""
    code = ("import sys, otelres_instrumentation_ccxt; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ccxt', 'aiohttp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_APP = textwrap.dedent(
    """
    # The application sets up its SDK (no opentelemetry-distro here); the instrumentor,
    # loaded earlier by opentelemetry-instrument, follows the global provider.
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)

    import ccxt
    from otelres.testing import ExchangeServer

    with ExchangeServer() as server:
        server.client("kraken").fetch_time()
    wrapped = getattr(ccxt.kraken.fetch_time, "_otelres_ccxt_wrapper", False)
    print("WRAPPED", wrapped, flush=True)
    """
)


@pytest.fixture(name="app")
def _app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(_APP)
    return path


def _run_instrumented(app: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("opentelemetry-instrument")
    environ = {
        **os.environ,
        "OTEL_SERVICE_NAME": "ccxt-app",
        **env,
    }
    environ.pop("OTELRES_CONFIG", None)
    return subprocess.run([str(command), sys.executable, str(app)], cwd=app.parent, env=environ,
                          capture_output=True, text=True, timeout=60, check=True)


def test_opentelemetry_instrument_turns_it_on(app: Path) -> None:
    """`opentelemetry-instrument python app.py` instruments ccxt and exports its spans."""
    result = _run_instrumented(app)
    assert "WRAPPED True" in result.stdout
    assert '"name": "kraken fetch_time"' in result.stdout
    assert '"name": "GET Time"' in result.stdout


def test_the_disable_variable_turns_it_off(app: Path) -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ccxt leaves ccxt untouched."""
    result = _run_instrumented(app, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="ccxt")
    assert "WRAPPED False" in result.stdout
    assert "kraken fetch_time" not in result.stdout


class _BrokenTelemetry:
    """A meter provider whose histogram raises, standing in for a broken metrics pipeline."""

    def get_meter(self, *args: Any, **kwargs: Any) -> _BrokenTelemetry:
        return self

    def create_histogram(self, *args: Any, **kwargs: Any) -> _BrokenTelemetry:
        return self

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("metrics pipeline down")


def test_broken_telemetry_never_changes_a_calls_outcome(
    instrument: Any, fresh_exchange: ExchangeServer
) -> None:
    """A span processor and a histogram that raise leave results and ccxt errors as they were."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from otelres.testing import Fault

    class Raising(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise RuntimeError("span processor down")

        def on_end(self, span: Any) -> None:
            raise RuntimeError("span processor down")

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(Raising())
    use_config()
    instrument(tracer_provider=tracer_provider, meter_provider=_BrokenTelemetry())
    client = fresh_exchange.client("kraken")
    client.load_markets()
    assert client.fetch_ticker("BTC/USD")["last"] > 0
    with pytest.raises(ccxt.BadSymbol):
        client.fetch_ticker("NOPE/USD")
    fresh_exchange.inject(Fault("http", status=503, venue="kraken", times=1))
    assert client.fetch_time() > 0
