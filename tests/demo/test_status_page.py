"""The status page: what /api/status reports, how the page is served, and how it looks in Chromium."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from otelres.health import HealthChecker, HealthServer, HTTPResponse
from otelres.health.checks import BackupFreshnessCheck, CircuitBreakerCheck, RateLimiterCheck
from otelres.resilience import CircuitBreaker, RateLimiter, Retry
from otelres.status_page import SCHEMA_VERSION, StatusCollector, add_status_page
from tests.demo.conftest import PageWatch


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("exchange down")


@contextmanager
def serving(server: HealthServer) -> Iterator[HealthServer]:
    """Run *server* for the block, and close it from a worker thread afterwards.

    Playwright's sync API keeps an event loop running on the test's thread while a page
    is open, and a server must not shut its own loop down from a thread whose loop runs.
    """
    server.start()
    try:
        yield server
    finally:
        worker = threading.Thread(target=server.close)
        worker.start()
        worker.join(30)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(name="breaker")
def _breaker() -> CircuitBreaker:
    return CircuitBreaker("pay", failure_threshold=2, reset_timeout=0.3)


@pytest.fixture(name="server")
def _server(breaker: CircuitBreaker) -> Iterator[HealthServer]:
    """A probe server on a free port with the status page, watching breaker ``pay``."""
    checker = HealthChecker([CircuitBreakerCheck(source=lambda: [breaker])])
    with serving(HealthServer(checker, host="127.0.0.1", port=0, metrics=False)) as server:
        add_status_page(
            server,
            StatusCollector(checker, title="payments", breakers=lambda: [breaker]),
            refresh_seconds=0.25,
            check_max_age=0.0,
        )
        yield server


def test_snapshot_reports_breaker_state_rate_and_transitions(breaker: CircuitBreaker) -> None:
    """A snapshot shows an opened breaker in red with its failures, failure rate and transitions."""
    collector = StatusCollector(breakers=lambda: [breaker], limiters=list)
    collector.snapshot()  # starts watching the breaker
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    doc = collector.snapshot()
    (shown,) = doc["breakers"]
    assert shown["state"] == "open"
    assert shown["colour"] == "red"
    assert shown["failures"] == 2
    assert shown["failure_rate"] == 1.0
    assert [(t["from"], t["to"], t["reason"]) for t in shown["transitions"]] == [
        ("closed", "open", "failure threshold")
    ]
    assert doc["overall"] == "red"
    assert doc["schema"] == SCHEMA_VERSION


def test_failure_rate_is_recent_without_a_window(breaker: CircuitBreaker) -> None:
    """Without a sliding window the failure rate covers the last rate_window seconds; close() stops recording."""
    now = [1000.0]
    collector = StatusCollector(breakers=lambda: [breaker], limiters=list, rate_window=10.0,
                                clock=lambda: now[0])
    with pytest.raises(Boom):
        breaker.call(fail)
    assert collector.snapshot()["breakers"][0]["failure_rate"] == 1.0
    for _ in range(3):
        now[0] += 4.0
        breaker.call(lambda: "ok")
        collector.snapshot()
    # The failure is more than 10 s old now: only the successes since are counted.
    assert collector.snapshot()["breakers"][0]["failure_rate"] == 0.0
    collector.close()  # stops listening: a later trip is not recorded
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state.value == "open"
    assert collector.transitions("pay") == []


def test_snapshot_reports_limiters_retries_health_and_backup(tmp_path: Path) -> None:
    """Limiter tokens and waits, retry outcomes, health history and backup age are all in the document."""
    from otelres.backup import BackupManager

    limiter = RateLimiter("venue", rate=1000.0, capacity=4)
    for _ in range(3):
        limiter.acquire()
    retry = Retry("reads", max_attempts=2, initial_delay=0.0)
    attempts = iter([Boom("blip"), "ok"])

    def flaky() -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry.call(flaky) == "ok"
    backups = BackupManager(tmp_path)
    backups.create_backup({"state": {"cash": 1}}, backup_type="manual")
    checker = HealthChecker([
        RateLimiterCheck(source=lambda: [limiter]),
        BackupFreshnessCheck(backups, interval_hours=1.0),
    ])
    checker.run_sync()
    checker.run_sync()
    doc = StatusCollector(checker, limiters=lambda: [limiter], retries=lambda: [retry]).snapshot()
    (shown_limiter,) = doc["limiters"]
    assert shown_limiter["capacity"] == 4
    assert 0 <= shown_limiter["available"] <= 4
    assert shown_limiter["acquired"] == 3
    (shown_retry,) = doc["retries"]
    assert shown_retry["success_with_retry"] == 1
    assert shown_retry["calls"] == 1
    checks = {c["name"]: c for c in doc["health"]["checks"]}
    assert [h["status"] for h in checks["backup"]["history"]] == ["green", "green"]
    assert doc["backup"]["status"] == "green"
    assert doc["backup"]["age_hours"] < 0.1
    assert doc["backup"]["backup_id"]
    json.dumps(doc, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere


def test_page_and_assets_are_served_self_contained(server: HealthServer) -> None:
    """The page, its stylesheet and script come from the server itself, under a CSP allowing nothing else."""
    status, headers, body = get(server.url + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    html = body.decode()
    assert "<title>payments</title>" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    for asset in assets:
        assert not asset.startswith(("http:", "https:", "//")), asset
    for path in ("/status/status.css", "/status/status.js"):
        status, headers, body = get(server.url + path)
        assert status == 200
        assert body
        assert b"http://" not in body
        assert b"https://" not in body
    assert get(server.url + "/status/missing.js")[0] == 404
    assert get(server.url + "/health")[0] == 200  # the probes are still there


def test_api_status_runs_stale_checks(server: HealthServer, breaker: CircuitBreaker) -> None:
    """/api/status runs the checks when their results are older than check_max_age."""
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    status, headers, body = get(server.url + "/api/status")
    doc = json.loads(body)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    (check,) = doc["health"]["checks"]
    assert check["status"] == "red"
    assert "pay (open)" in check["message"]


def test_add_status_page_rejects_bad_settings(server: HealthServer) -> None:
    """A non-positive refresh period or a negative check age is refused, naming the argument."""
    with pytest.raises(ValueError, match="refresh_seconds"):
        add_status_page(server, refresh_seconds=0)
    with pytest.raises(ValueError, match="check_max_age"):
        add_status_page(server, check_max_age=-1)


def wait_for(page: PageWatch, selector: str, timeout: float = 15.0) -> Any:
    return page.page.wait_for_selector(selector, timeout=timeout * 1000, state="attached")


def test_chromium_shows_breaker_and_health_light_change(
    page: PageWatch, server: HealthServer, breaker: CircuitBreaker
) -> None:
    """In Chromium the breaker turns OPEN and the light RED after failures, then CLOSED and GREEN."""
    page.page.goto(server.url + "/")
    wait_for(page, '[data-breaker="pay"][data-state="closed"]')
    wait_for(page, '.check[data-check="circuit_breakers"][data-status="green"]')
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    card = wait_for(page, '[data-breaker="pay"][data-state="open"]')
    assert card.query_selector(".state").inner_text().lower() == "open"
    wait_for(page, '.check[data-check="circuit_breakers"][data-status="red"]')
    wait_for(page, '#overall[data-status="red"]')
    time.sleep(0.35)  # the open period ends; the next call is the probe
    assert breaker.call(lambda: "ok") == "ok"
    wait_for(page, '[data-breaker="pay"][data-state="closed"]')
    wait_for(page, '.check[data-check="circuit_breakers"][data-status="green"]')
    wait_for(page, '#overall[data-status="green"]')
    history = page.page.eval_on_selector_all(
        '.check[data-check="circuit_breakers"] .history i', "nodes => nodes.map(n => n.dataset.status)"
    )
    assert "red" in history
    assert history[-1] == "green"
    transitions = page.page.inner_text('[data-breaker="pay"] .transitions')
    assert "closed → open" in transitions
    assert "half-open → closed" in transitions
    assert page.errors == []


def test_names_and_title_are_shown_as_text_never_as_markup(page: PageWatch) -> None:
    """A title or breaker name holding HTML is escaped in the page and rendered as plain text."""
    sneaky = CircuitBreaker('<img src=x id="injected">', failure_threshold=1)
    with serving(HealthServer(HealthChecker([]), port=0, metrics=False)) as server:
        add_status_page(
            server,
            StatusCollector(server.checker, breakers=lambda: [sneaky], limiters=list),
            title="<b>bot</b>",
            refresh_seconds=0.25,
        )
        html = get(server.url + "/")[2].decode()
        assert "<title>&lt;b&gt;bot&lt;/b&gt;</title>" in html
        page.page.goto(server.url + "/")
        card = wait_for(page, ".card.breaker")
        assert card.query_selector(".name").inner_text() == sneaky.name
        assert page.page.query_selector("#injected") is None
    assert page.errors == []


def test_chromium_says_when_the_service_stops_answering(page: PageWatch) -> None:
    """When /api/status stops answering the page says so in a banner, and drops it once answers return."""
    with serving(HealthServer(HealthChecker([]), port=0, metrics=False)) as server:
        add_status_page(server, refresh_seconds=0.25)
        page.page.goto(server.url + "/")
        page.page.wait_for_function("document.getElementById('subtitle').textContent.includes('updated')")
        server.add_route("/api/status", lambda request: HTTPResponse.text("overloaded\n", 503))
        banner = page.page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
        assert "cannot reach the service (HTTP 503)" in banner.inner_text()
        add_status_page(server, refresh_seconds=0.25)  # answering again
        page.page.wait_for_selector("#banner[hidden]", state="attached", timeout=10_000)


def test_public_face_exports_exactly_its_names() -> None:
    """otelres.status_page exports a sorted __all__ whose every name resolves."""
    import otelres.status_page as face

    assert face.__all__ == sorted(face.__all__)
    for name in face.__all__:
        assert getattr(face, name) is not None
    assert set(face.__all__) <= set(dir(face))
    with pytest.raises(AttributeError):
        face.not_a_name  # noqa: B018
