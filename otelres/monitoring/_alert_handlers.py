"""Where alerts go: a log line, an HTTP webhook, an e-mail (any callable works too).

The webhook receives ``POST`` with ``Content-Type: application/json`` and the body
:func:`alert_payload` returns::

    {"version": "1", "status": "firing", "name": "breaker_open:kraken", "severity": "critical",
     "summary": "circuit breaker kraken is open", "service": "trading-bot",
     "instrument": "otelres.breaker.state", "labels": {"breaker.name": "kraken", ...},
     "value": 1.0, "comparison": "==", "threshold": 1, "started_at": "2026-01-31T12:00:00.000Z",
     "resolved_at": null, "fingerprint": "5f0c...", "notification": 1}

``summary`` describes the notification's status: once resolved it reads ``"circuit breaker
kraken is no longer open"`` (see :attr:`AlertRule.resolved_summary`), never the firing text.

Webhook and e-mail deliveries are retried through otelres' own :class:`~otelres.resilience.Retry`
on transient failures (connection errors, timeouts, HTTP 408/429/5xx, SMTP 4xx); permanent
ones (HTTP 4xx, SMTP 5xx, a refused login) raise :class:`AlertDeliveryError` at once.
Webhook URLs and SMTP passwords are registered as secrets, so they never show in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from otelres._version import __version__
from otelres.monitoring._redaction import register_secret

if TYPE_CHECKING:
    from otelres.monitoring._alert_rules import Alert
    from otelres.resilience import Retry

__all__ = [
    "AlertDeliveryError",
    "EmailAlertHandler",
    "LogAlertHandler",
    "WebhookAlertHandler",
    "alert_payload",
]

PAYLOAD_VERSION = "1"


class AlertDeliveryError(Exception):
    """A notification could not be delivered (after retries, for transient failures)."""


class _TransientDeliveryError(AlertDeliveryError):
    """A failure worth retrying; ``retry_after`` carries a server's ``Retry-After`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON document a webhook receives for *alert* (see the module docs)."""
    return {"version": PAYLOAD_VERSION, **alert.to_dict()}


def _default_retry(name: str, max_attempts: int) -> Retry:
    """otelres' own :class:`Retry` for deliveries: transient failures only, 0.5 s to 10 s backoff.

    Its telemetry (``otelres.retry.*`` with ``retry.name`` *name*) shows delivery trouble
    next to everything else otelres guards.
    """
    from otelres.resilience import Retry

    return Retry(
        name,
        max_attempts=max_attempts,
        retry_on=(_TransientDeliveryError,),
        initial_delay=0.5,
        max_delay=10.0,
    )


class LogAlertHandler:
    """Writes each notification as a log record on *logger* (default ``otelres.alerts``).

    Firing alerts are logged at WARNING (ERROR for severity ``critical``), resolved ones at
    INFO, with the alert's fields as ``alert.*`` extra fields.
    """

    name = "log"

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        """Log to *logger*, or to ``otelres.alerts`` (which reaches the root logger's handlers)."""
        self.logger = logger if logger is not None else logging.getLogger("otelres.alerts")

    def __call__(self, alert: Alert) -> None:
        """Log *alert*."""
        if alert.status == "resolved":
            level = logging.INFO
        elif alert.severity == "critical":
            level = logging.ERROR
        else:
            level = logging.WARNING
        self.logger.log(
            level,
            "alert %s %s: %s",
            alert.name,
            alert.status,
            alert.summary,
            extra={
                "alert.name": alert.name,
                "alert.status": alert.status,
                "alert.severity": alert.severity,
                "alert.fingerprint": alert.fingerprint,
                "alert.value": alert.value,
                "alert.labels": dict(alert.labels),
                "alert.notification": alert.notification,
            },
        )


class WebhookAlertHandler:
    """POSTs :func:`alert_payload` as JSON to *url*.

    * *timeout_seconds*: per attempt; *max_attempts*: attempts in all, with backoff
      (or pass your own *retry*, a :class:`~otelres.resilience.Retry`);
    * *headers*: added to every request (their values are registered as secrets);
    * *signing_secret*: when given, every request carries
      ``X-Otelres-Signature: sha256=<hex HMAC-SHA256 of the body>`` so the receiver can check
      that the alert came from you (compare with ``hmac.compare_digest``);
    * *ssl_context*: for ``https://`` URLs signed by a private CA (default: the system's).

    A ``Retry-After`` header on a 429 or 503 is honoured. Raises
    :class:`AlertDeliveryError` when delivery fails for good.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5.0,
        headers: Mapping[str, str] | None = None,
        max_attempts: int = 3,
        retry: Retry | None = None,
        signing_secret: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "webhook",
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            scheme = parts.scheme if parts is not None else type(url).__name__
            raise ValueError(
                "WebhookAlertHandler(url): expected an http:// or https:// URL with a host, "
                f"got a {scheme!r} URL"
            )
        if timeout_seconds <= 0:
            raise ValueError(f"WebhookAlertHandler(timeout_seconds): expected > 0, got {timeout_seconds!r}")
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.headers = dict(headers or {})
        self.name = name
        # Webhook URLs (Slack, Teams, ...) are credentials: only scheme, host and port are shown.
        self.target = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        if url != self.target and len(url) >= 4:
            register_secret(url)
        for value in self.headers.values():
            if len(value) >= 4:
                register_secret(value)
        if signing_secret is not None:
            if len(signing_secret) < 16:
                raise ValueError("WebhookAlertHandler(signing_secret): use at least 16 characters")
            register_secret(signing_secret)
        self._signing_key = signing_secret.encode("utf-8") if signing_secret is not None else None
        self.ssl_context = ssl_context
        self.retry = retry if retry is not None else _default_retry("otelres.alerts.webhook", max_attempts)

    def __call__(self, alert: Alert) -> None:
        """Deliver *alert*, retrying transient failures."""
        body = json.dumps(alert_payload(alert), ensure_ascii=False).encode("utf-8")
        self.retry.call(self._post, body)

    def _post(self, body: bytes) -> None:
        """One delivery attempt; raises the transient or permanent error the answer means.

        Errors name :attr:`target` only: the URL's path and query are the credential of most
        chat webhooks and must not reach logs or exception messages.
        """
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"otelres/{__version__}",
            **self.headers,
        }
        if self._signing_key is not None:
            digest = hmac.new(self._signing_key, body, hashlib.sha256).hexdigest()
            headers["X-Otelres-Signature"] = f"sha256={digest}"
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout_seconds, context=self.ssl_context
            ) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            message = f"webhook {self.target} answered HTTP {status}"
            if status in (408, 425, 429) or status >= 500:
                raise _TransientDeliveryError(message, _retry_after(exc.headers)) from None
            raise AlertDeliveryError(message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _TransientDeliveryError(
                f"webhook {self.target} unreachable: {type(reason).__name__}: {reason}"
            ) from None


def _retry_after(headers: Any) -> float | None:
    """Seconds from a numeric ``Retry-After`` header (an HTTP date is ignored), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class EmailAlertHandler:
    """Sends each notification as a plain-text e-mail through an SMTP server.

    * *host*, *port*: the SMTP server; *security*: ``"none"``, ``"starttls"`` or ``"ssl"``
      (implicit TLS, usually port 465); *ssl_context* for a server certificate signed by a
      private CA (default: the system's trust store, with host name checking);
    * *sender*, *recipients*: the envelope and header addresses;
    * *username*, *password*: log in when given (the password is registered as a secret);
    * *timeout_seconds* per attempt, *max_attempts* or your own *retry*.

    Subject: ``<subject_prefix> [FIRING] <name>: <summary>`` (``[RESOLVED]`` and the resolved
    summary once it is over). Raises
    :class:`AlertDeliveryError` when delivery fails for good.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        security: Literal["none", "starttls", "ssl"] = "none",
        ssl_context: ssl.SSLContext | None = None,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        retry: Retry | None = None,
        subject_prefix: str = "[otelres]",
        name: str = "email",
    ) -> None:
        if isinstance(recipients, str):
            recipients = [recipients]
        if not recipients:
            raise ValueError("EmailAlertHandler(recipients): expected at least one address")
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(
                f"EmailAlertHandler(security): expected 'none', 'starttls' or 'ssl', got {security!r}"
            )
        if (username is None) != (password is None):
            raise ValueError("EmailAlertHandler: username and password go together; got only one")
        if timeout_seconds <= 0:
            raise ValueError(f"EmailAlertHandler(timeout_seconds): expected > 0, got {timeout_seconds!r}")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        if password is not None and len(password) >= 4:
            register_secret(password)
        self.security = security
        self.ssl_context = ssl_context
        self.timeout_seconds = timeout_seconds
        self.subject_prefix = subject_prefix
        self.name = name
        self.retry = retry if retry is not None else _default_retry("otelres.alerts.email", max_attempts)

    def message(self, alert: Alert) -> EmailMessage:
        """The e-mail sent for *alert*."""
        message = EmailMessage()
        subject = f"{self.subject_prefix} [{alert.status.upper()}] {alert.name}: {alert.summary}"
        message["Subject"] = subject[:250]
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["X-Otelres-Alert-Fingerprint"] = alert.fingerprint
        data = alert_payload(alert)
        lines = [f"{alert.status.upper()}: {alert.name} ({alert.severity})", "", alert.summary, ""]
        lines += [f"{key}: {data[key]}" for key in ("service", "instrument", "value", "comparison",
                                                     "threshold", "started_at", "resolved_at",
                                                     "fingerprint", "notification")]
        lines += ["labels:"] + [f"  {k} = {v}" for k, v in sorted(alert.labels.items())]
        lines += ["", "JSON:", json.dumps(data, ensure_ascii=False, indent=2)]
        message.set_content("\n".join(lines) + "\n")
        return message

    def __call__(self, alert: Alert) -> None:
        """Deliver *alert*, retrying transient failures."""
        self.retry.call(self._send, self.message(alert))

    def _send(self, message: EmailMessage) -> None:
        """One delivery attempt over a fresh connection.

        A new connection per notification: alerts are rare, and a pooled connection would
        go stale between them. 4xx answers and connection trouble are transient, 5xx (a
        refused login, an unknown mailbox) permanent.
        """
        where = f"SMTP server {self.host}:{self.port}"
        try:
            smtp: smtplib.SMTP
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_seconds,
                    context=self.ssl_context or ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.username is not None and self._password is not None:
                    smtp.login(self.username, self._password)
                smtp.send_message(message, from_addr=self.sender, to_addrs=self.recipients)
        except smtplib.SMTPResponseException as exc:
            text = f"{where} answered {exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                raise _TransientDeliveryError(text) from None
            raise AlertDeliveryError(text) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise AlertDeliveryError(f"{where} refused every recipient ({len(exc.recipients)})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _TransientDeliveryError(f"{where} failed: {type(exc).__name__}: {exc}") from None
