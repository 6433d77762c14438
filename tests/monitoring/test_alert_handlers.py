"""Alert handlers against real servers on 127.0.0.1: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import datetime
import email
import email.policy
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from otelres.config import MonitoringSettings
from otelres.monitoring import (
    Alert,
    AlertDeliveryError,
    EmailAlertHandler,
    LogAlertHandler,
    WebhookAlertHandler,
    alert_payload,
    setup_logging,
)
from otelres.resilience._retry import no_backoff  # otelres.testing.no_backoff points at a missing module yet
from tests.conftest import free_port

from .conftest import json_lines

pytestmark = pytest.mark.integration


def make_alert(status: str = "firing", **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "name": "breaker_open:kraken",
        "status": status,
        "severity": "critical",
        "summary": "circuit breaker kraken is open",
        "instrument": "otelres.breaker.state",
        "labels": {"breaker.name": "kraken", "breaker.state": "open"},
        "value": 1.0,
        "comparison": "==",
        "threshold": 1,
        "started_at": 1_700_000_000.25,
        "resolved_at": 1_700_000_060.0 if status == "resolved" else None,
        "fingerprint": "0123456789abcdef",
        "notification": 1,
        "service": "bot",
    }
    fields.update(changes)
    return Alert(**fields)


class WebhookReceiver:
    """An HTTP server that records POSTs and answers with scripted status codes (then 200)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.scheme = "https" if tls is not None else "http"
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.retry_after: str | None = None
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if receiver.retry_after is not None and status in (429, 503):
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/T000/B000/XXXXSECRETXXXX") -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def test_webhook_posts_the_documented_payload(receiver: WebhookReceiver) -> None:
    """The webhook receives a JSON POST with every documented field."""
    WebhookAlertHandler(receiver.url(), headers={"X-Team": "quant"})(make_alert())
    ((path, headers, body),) = receiver.requests
    assert path == "/hooks/T000/B000/XXXXSECRETXXXX"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "quant"
    assert json.loads(body) == {
        "version": "1",
        "status": "firing",
        "name": "breaker_open:kraken",
        "severity": "critical",
        "summary": "circuit breaker kraken is open",
        "service": "bot",
        "instrument": "otelres.breaker.state",
        "labels": {"breaker.name": "kraken", "breaker.state": "open"},
        "value": 1.0,
        "comparison": "==",
        "threshold": 1,
        "started_at": "2023-11-14T22:13:20.250Z",
        "resolved_at": None,
        "fingerprint": "0123456789abcdef",
        "notification": 1,
    }
    assert json.loads(body) == alert_payload(make_alert())


def test_webhook_retries_server_errors_through_retry(receiver: WebhookReceiver) -> None:
    """503 and 429 answers are retried; the third attempt delivers."""
    receiver.statuses = [503, 429]
    with no_backoff():
        WebhookAlertHandler(receiver.url(), max_attempts=3)(make_alert())
    assert len(receiver.requests) == 3


def test_webhook_gives_up_after_max_attempts(receiver: WebhookReceiver) -> None:
    """A webhook failing on every attempt raises AlertDeliveryError after max_attempts tries."""
    receiver.statuses = [500, 500, 500, 500]
    with no_backoff(), pytest.raises(AlertDeliveryError, match="HTTP 500"):
        WebhookAlertHandler(receiver.url(), max_attempts=3)(make_alert())
    assert len(receiver.requests) == 3


def test_webhook_client_errors_are_not_retried(receiver: WebhookReceiver) -> None:
    """A 4xx answer (other than 408/425/429) fails at once without retrying."""
    receiver.statuses = [404]
    with no_backoff(), pytest.raises(AlertDeliveryError, match="HTTP 404"):
        WebhookAlertHandler(receiver.url(), max_attempts=3)(make_alert())
    assert len(receiver.requests) == 1


def test_webhook_honours_retry_after(receiver: WebhookReceiver) -> None:
    """A Retry-After header makes the next attempt wait at least that long."""
    receiver.statuses = [429]
    receiver.retry_after = "0.3"
    started = time.monotonic()
    WebhookAlertHandler(receiver.url(), max_attempts=2)(make_alert())
    assert len(receiver.requests) == 2
    assert time.monotonic() - started >= 0.3


def test_webhook_times_out(receiver: WebhookReceiver) -> None:
    """A receiver slower than timeout_seconds fails the attempt instead of hanging."""
    receiver.delay = 1.0
    started = time.monotonic()
    with no_backoff(), pytest.raises(AlertDeliveryError, match="unreachable"):
        WebhookAlertHandler(receiver.url(), timeout_seconds=0.2, max_attempts=1)(make_alert())
    assert time.monotonic() - started < 0.9


def test_webhook_unreachable_fails_with_host_only(stream: io.StringIO) -> None:
    """A closed port fails with an error naming the host, never the secret URL path."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/SECRET-TOKEN-123"
    handler = WebhookAlertHandler(url, max_attempts=2)
    with no_backoff(), pytest.raises(AlertDeliveryError) as caught:
        handler(make_alert())
    assert f"http://127.0.0.1:{port}" in str(caught.value)
    assert "SECRET-TOKEN-123" not in str(caught.value)
    setup_logging(MonitoringSettings(), stream=stream)
    logging.getLogger("t").warning("posting to %s", url)
    assert "SECRET-TOKEN-123" not in stream.getvalue()


def test_webhook_refuses_non_http_urls() -> None:
    """A URL that is not http(s) is refused, naming the argument."""
    with pytest.raises(ValueError, match=r"WebhookAlertHandler\(url\)"):
        WebhookAlertHandler("ftp://example.invalid/x")


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.fail_first: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_first:
            self.fail_first -= 1
            return "451 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture(name="smtp")
def _smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"smtp-pass-99"
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_require_tls=False,
        auth_required=False,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


def _port(controller: Controller) -> int:
    return int(controller.port)


def test_email_is_delivered_with_subject_and_body(smtp: tuple[Controller, Inbox]) -> None:
    """An e-mail reaches the SMTP server with the status and summary in its subject."""
    controller, inbox = smtp
    handler = EmailAlertHandler(
        "127.0.0.1", _port(controller), sender="bot@example.test", recipients=["ops@example.test"]
    )
    handler(make_alert())
    handler(make_alert("resolved"))
    (sender, rcpts, first), (_, _, second) = inbox.messages
    assert (sender, rcpts) == ("bot@example.test", ["ops@example.test"])
    assert first["Subject"].strip() == "[otelres] [FIRING] breaker_open:kraken: circuit breaker kraken is open"
    assert second["Subject"].strip().startswith("[otelres] [RESOLVED] breaker_open:kraken")
    assert first["X-Otelres-Alert-Fingerprint"] == "0123456789abcdef"
    body = first.get_content()
    assert "breaker.name = kraken" in body
    assert '"fingerprint": "0123456789abcdef"' in body


def test_email_logs_in_when_credentials_are_given(smtp: tuple[Controller, Inbox]) -> None:
    """With username and password the handler authenticates; a wrong password fails for good."""
    controller, inbox = smtp
    good = EmailAlertHandler(
        "127.0.0.1", _port(controller), sender="bot@example.test", recipients="ops@example.test",
        username="bot", password="smtp-pass-99",
    )
    good(make_alert())
    assert len(inbox.messages) == 1
    bad = EmailAlertHandler(
        "127.0.0.1", _port(controller), sender="bot@example.test", recipients="ops@example.test",
        username="bot", password="wrong-password",
    )
    with no_backoff(), pytest.raises(AlertDeliveryError, match="535"):
        bad(make_alert())


def test_email_retries_a_temporary_refusal(smtp: tuple[Controller, Inbox]) -> None:
    """A 4xx answer from the SMTP server is retried and the message then delivered once."""
    controller, inbox = smtp
    inbox.fail_first = 1
    with no_backoff():
        EmailAlertHandler(
            "127.0.0.1", _port(controller), sender="bot@example.test", recipients=["ops@example.test"]
        )(make_alert())
    assert len(inbox.messages) == 1


def test_email_password_never_reaches_logs(stream: io.StringIO) -> None:
    """The SMTP password is registered as a secret, so a log line quoting it is masked."""
    EmailAlertHandler(
        "127.0.0.1", 25, sender="a@b.test", recipients=["c@d.test"], username="u", password="smtp-pass-99"
    )
    setup_logging(MonitoringSettings(), stream=stream)
    logging.getLogger("t").error("login failed with smtp-pass-99")
    assert json_lines(stream)[0]["message"] == "login failed with ***"


def test_email_rejects_incomplete_credentials() -> None:
    """A username without a password (or the reverse) is refused at construction."""
    with pytest.raises(ValueError, match="username and password"):
        EmailAlertHandler("h", sender="a@b.test", recipients=["c@d.test"], username="u")


def test_log_handler_writes_a_record_per_notification(stream: io.StringIO) -> None:
    """LogAlertHandler logs firing alerts at ERROR for critical severity and resolutions at INFO."""
    setup_logging(MonitoringSettings(), stream=stream)
    handler = LogAlertHandler()
    handler(make_alert())
    handler(make_alert("resolved"))
    firing, resolved = json_lines(stream)
    assert (firing["level"], firing["logger"]) == ("ERROR", "otelres.alerts")
    assert firing["message"] == "alert breaker_open:kraken firing: circuit breaker kraken is open"
    assert firing["alert.labels"] == {"breaker.name": "kraken", "breaker.state": "open"}
    assert resolved["level"] == "INFO"


def _breaker_opens_and_closes(breaker_name: str, handlers: list[Any], **options: Any) -> None:
    """A breaker_open manager with *handlers* sees breaker *breaker_name* open, then close again."""
    from opentelemetry.sdk.metrics import MeterProvider

    from otelres.monitoring import AlertManager, breaker_open
    from otelres.resilience import CircuitBreaker

    manager = AlertManager([breaker_open(breaker_name)], handlers, **options)
    provider = MeterProvider(metric_readers=[manager.reader])
    breaker = CircuitBreaker(breaker_name, failure_threshold=1, meter_provider=provider)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with no_backoff():
        manager.evaluate()
        breaker.reset()
        manager.evaluate()
    provider.shutdown()


def _email_handler(controller: Controller) -> EmailAlertHandler:
    return EmailAlertHandler(
        "127.0.0.1", _port(controller), sender="bot@example.test", recipients=["ops@example.test"]
    )


def test_manager_notifies_webhook_and_email_end_to_end(
    receiver: WebhookReceiver, smtp: tuple[Controller, Inbox]
) -> None:
    """A breaker rule fires and resolves through a dead webhook, a live webhook and e-mail alike."""
    controller, inbox = smtp
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    dead = WebhookAlertHandler(f"http://127.0.0.1:{dead_port}/down", max_attempts=2)
    handlers = [dead, WebhookAlertHandler(receiver.url("/alerts")), _email_handler(controller)]
    _breaker_opens_and_closes("e2e_kraken", handlers, service_name="bot")
    statuses = [json.loads(body)["status"] for path, _, body in receiver.requests]
    assert statuses == ["firing", "resolved"]
    assert json.loads(receiver.requests[0][2])["labels"]["breaker.name"] == "e2e_kraken"
    subjects = [message["Subject"].strip() for _, _, message in inbox.messages]
    assert subjects[0].startswith("[otelres] [FIRING] breaker_open:e2e_kraken")
    assert subjects[1].startswith("[otelres] [RESOLVED] breaker_open:e2e_kraken")


def test_resolved_notifications_say_the_condition_is_over(
    receiver: WebhookReceiver, smtp: tuple[Controller, Inbox], stream: io.StringIO
) -> None:
    """Once a breaker closes again, the log line, webhook summary and e-mail subject say it is no longer open."""
    setup_logging(MonitoringSettings(), service_name="bot", stream=stream)
    controller, inbox = smtp
    handlers = [LogAlertHandler(), WebhookAlertHandler(receiver.url("/alerts")), _email_handler(controller)]
    _breaker_opens_and_closes("kraken_rs", handlers)
    summaries = [json.loads(body)["summary"] for _, _, body in receiver.requests]
    assert summaries == ["circuit breaker kraken_rs is open", "circuit breaker kraken_rs is no longer open"]
    subjects = [message["Subject"].strip() for _, _, message in inbox.messages]
    assert subjects[1] == "[otelres] [RESOLVED] breaker_open:kraken_rs: circuit breaker kraken_rs is no longer open"
    messages = [line["message"] for line in json_lines(stream) if line["logger"] == "otelres.alerts"]
    assert messages[-1] == "alert breaker_open:kraken_rs resolved: circuit breaker kraken_rs is no longer open"


@pytest.fixture(name="certificate", scope="module")
def _certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file), made for these tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_webhook_signs_its_body(receiver: WebhookReceiver) -> None:
    """With signing_secret the request carries an HMAC-SHA256 of the exact body it sent."""
    secret = "webhook-signing-secret-0001"
    WebhookAlertHandler(receiver.url(), signing_secret=secret)(make_alert())
    ((_, headers, body),) = receiver.requests
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Otelres-Signature"], expected)


def test_webhook_over_https_with_a_private_ca(certificate: tuple[Path, Path]) -> None:
    """An https webhook is verified against the given CA, and refused without it."""
    receiver = WebhookReceiver(tls=_server_tls(certificate))
    try:
        trusted = ssl.create_default_context(cafile=str(certificate[0]))
        WebhookAlertHandler(receiver.url(), ssl_context=trusted)(make_alert())
        assert len(receiver.requests) == 1
        with no_backoff(), pytest.raises(AlertDeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            WebhookAlertHandler(receiver.url(), max_attempts=1)(make_alert())
    finally:
        receiver.close()


def test_email_over_starttls_with_login(certificate: tuple[Path, Path]) -> None:
    """security="starttls" upgrades the connection before logging in to a server that demands it."""
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=auth_data.password == b"tls-pass-123", handled=False)

    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=_server_tls(certificate),
        require_starttls=True, authenticator=authenticate, auth_required=True,
    )
    controller.start()
    try:
        EmailAlertHandler(
            "127.0.0.1", controller.port, security="starttls",
            ssl_context=ssl.create_default_context(cafile=str(certificate[0])),
            sender="bot@example.test", recipients=["ops@example.test"],
            username="bot", password="tls-pass-123",
        )(make_alert())
    finally:
        controller.stop()
    assert len(inbox.messages) == 1


def test_a_hanging_webhook_does_not_hold_back_the_other_handlers(
    receiver: WebhookReceiver, smtp: tuple[Controller, Inbox]
) -> None:
    """While a webhook sits through its timeouts, the e-mail of the same alert is already sent."""
    from opentelemetry.sdk.metrics import MeterProvider

    from otelres.monitoring import AlertManager, AlertRule, MetricsCollector

    controller, inbox = smtp
    receiver.delay = 0.6
    mailed_at: list[float] = []
    email = EmailAlertHandler("127.0.0.1", _port(controller), sender="bot@example.test",
                              recipients=["ops@example.test"])

    def email_and_note_time(alert: Alert) -> None:
        email(alert)
        mailed_at.append(time.monotonic())

    manager = AlertManager(
        [AlertRule("errors", "app.errors", ">", 0)],
        [WebhookAlertHandler(receiver.url(), timeout_seconds=0.2, max_attempts=3),
         email_and_note_time],
        service_name="bot",
    )
    provider = MeterProvider(metric_readers=[manager.reader])
    MetricsCollector(meter_provider=provider).increment("app.errors")
    started = time.monotonic()
    with no_backoff():
        (alert,) = manager.evaluate()
    finished = time.monotonic()
    provider.shutdown()
    assert alert.status == "firing"
    assert len(receiver.requests) == 3  # every webhook attempt timed out, after 0.6 s at least
    assert finished - started >= 0.55
    assert mailed_at[0] - started < 0.5  # the e-mail did not wait for them
    assert len(inbox.messages) == 1
