"""The HTTP probes, exercised with real HTTP requests against a server on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from otelres.config import Config
from otelres.health import (
    HealthChecker,
    HealthResult,
    HealthServer,
    HealthStatus,
    HTTPRequest,
    HTTPResponse,
    health_check,
    serve,
)


def _get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


class Switchable:
    """Checks whose status a test sets."""

    def __init__(self) -> None:
        self.status = {"db": HealthStatus.GREEN, "exchange": HealthStatus.GREEN, "heart": HealthStatus.GREEN}

    def checker(self) -> HealthChecker:
        def make(name: str, tags: list[str]):  # type: ignore[no-untyped-def]
            @health_check(name, tags=tags, register=False)
            def check() -> HealthResult:
                status = self.status[name]
                return HealthResult(name, status, f"{name} is {status.value}")
            return check

        return HealthChecker(
            [make("db", ["readiness"]), make("exchange", []), make("heart", ["liveness"])], config=Config()
        )


@pytest.fixture(name="switch")
def _switch() -> Switchable:
    return Switchable()


@pytest.fixture(name="server")
def _server(switch: Switchable) -> Iterator[HealthServer]:
    server = serve(switch.checker(), port=0, background=True, metrics=False)
    yield server
    server.close()


def test_binds_localhost_by_default(server: HealthServer) -> None:
    """The server listens on 127.0.0.1 unless told otherwise."""
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_readyz_is_ok_when_green(server: HealthServer) -> None:
    """/readyz answers 200 "ok" when every check is GREEN."""
    assert _get(server.url + "/readyz")[::2] == (200, "ok\n")


def test_readyz_is_503_on_red_with_the_failing_check(server: HealthServer, switch: Switchable) -> None:
    """A RED check makes /readyz answer 503 listing [-]name failed."""
    switch.status["exchange"] = HealthStatus.RED
    status, content_type, body = _get(server.url + "/readyz")
    assert status == 503
    assert content_type.startswith("text/plain")
    assert "[-]exchange failed: exchange is red" in body
    assert "[+]db ok" in body
    assert body.endswith("readyz check failed\n")


def test_yellow_is_ready(server: HealthServer, switch: Switchable) -> None:
    """A YELLOW (degraded) check still answers 200, listed as degraded in verbose mode."""
    switch.status["db"] = HealthStatus.YELLOW
    status, _, body = _get(server.url + "/readyz?verbose")
    assert status == 200
    assert "[+]db degraded: db is yellow" in body
    assert body.endswith("readyz check passed\n")


def test_exclude_leaves_a_check_out(server: HealthServer, switch: Switchable) -> None:
    """?exclude=NAME ignores that check; an unknown name is warned about, not fatal."""
    switch.status["exchange"] = HealthStatus.RED
    status, _, body = _get(server.url + "/readyz?verbose&exclude=exchange&exclude=nope")
    assert status == 200
    assert "exchange" not in body.replace("'nope'", "")
    assert "warn: some health checks cannot be excluded: no matches for 'nope'" in body


def test_livez_runs_only_liveness_checks(server: HealthServer, switch: Switchable) -> None:
    """/livez looks only at checks tagged "liveness", so a dependency outage does not restart the pod."""
    switch.status["exchange"] = HealthStatus.RED
    assert _get(server.url + "/livez")[0] == 200
    switch.status["heart"] = HealthStatus.RED
    status, _, body = _get(server.url + "/livez?verbose")
    assert status == 503
    assert body.splitlines() == ["[-]heart failed: heart is red", "livez check failed"]


def test_single_check_endpoints(server: HealthServer, switch: Switchable) -> None:
    """/readyz/<name> answers for one check; an unknown name is 404."""
    switch.status["db"] = HealthStatus.RED
    assert _get(server.url + "/readyz/exchange")[::2] == (200, "[+]exchange ok\n")
    assert _get(server.url + "/readyz/db")[0] == 503
    assert _get(server.url + "/readyz/nope")[0] == 404


def test_livez_names_only_liveness_checks(server: HealthServer) -> None:
    """/livez/<name> answers for a liveness check and is 404 for a check /livez does not run."""
    assert _get(server.url + "/livez/heart")[::2] == (200, "[+]heart ok\n")
    assert _get(server.url + "/livez/db")[::2] == (404, "livez: no check named 'db'\n")


def test_health_serves_the_json_report(server: HealthServer, switch: Switchable) -> None:
    """/health is the JSON report (503 when RED), filterable by ?check= and ?tag=."""
    status, content_type, body = _get(server.url + "/health")
    data = json.loads(body)
    assert (status, content_type) == (200, "application/json")
    assert data["schema_version"] == 1
    assert set(data["checks"]) == {"db", "exchange", "heart"}
    switch.status["db"] = HealthStatus.RED
    status, _, body = _get(server.url + "/health?check=db")
    assert status == 503
    assert list(json.loads(body)["checks"]) == ["db"]
    assert list(json.loads(_get(server.url + "/health?tag=liveness")[2])["checks"]) == ["heart"]
    status, _, body = _get(server.url + "/health?check=nope")
    assert status == 400
    assert "unknown health check 'nope'" in json.loads(body)["error"]


def test_metrics_is_404_when_the_exporter_is_off(server: HealthServer) -> None:
    """/metrics answers 404 explaining how to turn the Prometheus exporter on."""
    status, _, body = _get(server.url + "/metrics")
    assert status == 404
    assert "metrics_exporter" in body


def test_metrics_serves_prometheus_text_when_on(switch: Switchable) -> None:
    """With the Prometheus exporter on, /metrics serves prometheus_client's registry including the health gauge."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        checker = HealthChecker(switch.checker().checks, config=Config(), meter_provider=provider)
        checker.run_sync()
        with HealthServer(checker, port=0, metrics=True) as server:
            status, content_type, body = _get(server.url + "/metrics")
    finally:
        provider.shutdown()
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert 'otelres_health_status{health_check_name="overall"' in body


def test_extra_routes_can_be_added(server: HealthServer) -> None:
    """add_route() serves another page from the same server (a status page at /, for instance)."""

    def page(request: HTTPRequest) -> HTTPResponse:
        name = request.query.get("name", ["world"])[0]
        return HTTPResponse(200, f"<h1>hello {name}</h1>".encode(), "text/html; charset=utf-8")

    server.add_route("/", page)
    assert _get(server.url + "/?name=ops") == (200, "text/html; charset=utf-8", "<h1>hello ops</h1>")
    assert _get(server.url + "/nowhere")[0] == 404


def test_a_failing_route_is_a_500_not_a_dead_server(server: HealthServer) -> None:
    """A handler that raises gives 500 and the server keeps answering."""

    def broken(request: HTTPRequest) -> HTTPResponse:
        raise RuntimeError("bug")

    server.add_route("/broken", broken)
    assert _get(server.url + "/broken")[0] == 500
    assert _get(server.url + "/readyz")[0] == 200


def test_close_releases_the_port(switch: Switchable) -> None:
    """After close() the port is free to bind again."""
    import socket

    server = serve(switch.checker(), port=0, background=True, metrics=False)
    port = server.port
    server.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_close_ends_kept_alive_connections(switch: Switchable) -> None:
    """A client holding a keep-alive connection gets no answer from a closed server."""
    import http.client

    server = serve(switch.checker(), port=0, background=True, metrics=False)
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)

    def livez() -> int:
        client.request("GET", "/livez")
        response = client.getresponse()
        response.read()
        return response.status

    try:
        assert livez() == 200
        server.close()
        with pytest.raises((http.client.HTTPException, OSError)):
            livez()
    finally:
        client.close()
        server.close()


def test_a_stalled_loop_answers_503_instead_of_hanging(switch: Switchable) -> None:
    """When the loop the checks run on is not running, probes answer 503 after the timeout plus grace."""
    import asyncio

    stalled = asyncio.new_event_loop()
    checker = switch.checker()
    checker.timeout = 0.1
    try:
        with HealthServer(checker, port=0, metrics=False, loop=stalled) as server:
            server.report_grace_seconds = 0.2
            status, _, body = _get(server.url + "/readyz")
    finally:
        stalled.run_until_complete(asyncio.sleep(0.01))  # let the abandoned run be cancelled
        stalled.close()
    assert status == 503
    assert "is the event loop running?" in body


async def test_close_works_from_code_running_an_event_loop(switch: Switchable) -> None:
    """close() called from async code (a thread whose loop is running) stops the server and
    its own loop instead of failing."""
    server = serve(switch.checker(), port=0, background=True, metrics=False)
    assert _get(server.url + "/readyz")[0] == 200
    server.close()
    assert server.loop.is_closed()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/readyz", timeout=2)
