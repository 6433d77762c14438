"""Redaction: secrets never reach JSON, text or OTLP output, by key, in text, or by value."""

from __future__ import annotations

import io
import re
import time

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otelres.config import MonitoringSettings
from otelres.monitoring import Redactor, get_logger, register_secret, setup_logging
from otelres.monitoring._redaction import DEFAULT_REDACT_KEYS

from .conftest import json_lines

SENSITIVE_KEYS = [
    "api_key",
    "apiKey",
    "API-KEY",
    "x-api-key",
    "kraken_api_secret",
    "client_secret",
    "password",
    "passphrase",
    "token",
    "access_token",
    "signature",
    "Authorization",
    "private_key",
]


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_sensitive_keys_are_masked_in_extra(key: str, stream: io.StringIO) -> None:
    """The value of an extra field whose key names a secret is replaced by ***."""
    setup_logging(MonitoringSettings(), stream=stream)
    get_logger("t").info("call", extra={key: "hunter2-value", "symbol": "BTC/USD"})
    (line,) = json_lines(stream)
    assert line[key] == "***"
    assert line["symbol"] == "BTC/USD"
    assert "hunter2" not in stream.getvalue()


@pytest.mark.parametrize("key", ["max_tokens", "available_tokens", "keys", "symbol", "secrets_count"])
def test_ordinary_keys_are_not_masked(key: str) -> None:
    """Keys that merely contain a sensitive word elsewhere keep their values."""
    assert Redactor().field(key, 42) == 42


def test_nested_containers_are_masked() -> None:
    """Sensitive keys inside dicts and lists nested in a field are masked too."""
    value = {"exchange": {"apiKey": "k-123", "options": [{"password": "p-456"}, "plain"]}}
    assert Redactor().field("config", value) == {
        "exchange": {"apiKey": "***", "options": [{"password": "***"}, "plain"]}
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login api_key=abc123 ok", "login api_key=*** ok"),
        ('{"apiKey": "abc123", "x": 1}', '{"apiKey": "***", "x": 1}'),
        ("headers Authorization: Bearer eyJhbGciOi.x.y", "headers Authorization: ***"),
        ("https://h/p?symbol=BTC&token=t0k3n&x=1", "https://h/p?symbol=BTC&token=***&x=1"),
        ("client_secret = 's3cr3t'", "client_secret = '***'"),
        ("max_tokens=5 limit=3", "max_tokens=5 limit=3"),
        ('{"password": "two words", "ok": 1}', '{"password": "***", "ok": 1}'),
        ("{'secret': 'a b c', 'n': 2}", "{'secret': '***', 'n': 2}"),
    ],
)
def test_key_value_pairs_in_text_are_masked(text: str, expected: str) -> None:
    """key=value and key: value pairs with a sensitive key are masked inside free text."""
    assert Redactor().text(text) == expected


def test_registered_secret_is_masked_everywhere(stream: io.StringIO) -> None:
    """A registered value is masked in the message, in fields, nested, and in exception text."""
    register_secret("Zq9-SECRET-value")
    setup_logging(MonitoringSettings(), stream=stream)
    logger = get_logger("t")
    logger.info("using Zq9-SECRET-value now", extra={"note": "k=Zq9-SECRET-value", "deep": ["Zq9-SECRET-value"]})
    try:
        raise RuntimeError("auth failed for Zq9-SECRET-value")
    except RuntimeError:
        logger.exception("call failed")
    assert "Zq9-SECRET-value" not in stream.getvalue()
    first, second = json_lines(stream)
    assert first["message"] == "using *** now"
    assert first["note"] == "k=***"
    assert first["deep"] == ["***"]
    assert "RuntimeError: auth failed for ***" in second["exc_info"]


def test_text_output_is_redacted_too(stream: io.StringIO) -> None:
    """The text formatter masks keys, pairs and registered secrets like the JSON one."""
    register_secret("pass-phrase-42")
    setup_logging(MonitoringSettings(log_format="text"), stream=stream)
    get_logger("t").info("with pass-phrase-42 and secret=abc", extra={"apiKey": "k-1"})
    out = stream.getvalue()
    assert "pass-phrase-42" not in out
    assert "abc" not in out
    assert "k-1" not in out
    assert "apiKey=***" in out


def test_configured_redact_keys_are_added(stream: io.StringIO) -> None:
    """[monitoring] redact_keys masks further keys, in fields and in text."""
    setup_logging(MonitoringSettings(redact_keys=("account_id",)), stream=stream)
    get_logger("t").info("account_id=ACC-9 done", extra={"accountId": "ACC-9"})
    (line,) = json_lines(stream)
    assert line["accountId"] == "***"
    assert line["message"] == "account_id=*** done"


def test_otlp_records_are_redacted(stream: io.StringIO) -> None:
    """Body, attributes and exception attributes sent over OTLP are masked like the JSON line."""
    register_secret("otlp-secret-77")
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    try:
        raise ValueError("token=abc otlp-secret-77")
    except ValueError:
        get_logger("t").exception(
            "failed with otlp-secret-77", extra={"password": "pw-1", "cfg": {"apiKey": "k"}}
        )
    (finished,) = exporter.get_finished_logs()
    record = finished.log_record
    attributes = dict(record.attributes or {})
    assert record.body == "failed with ***"
    assert attributes["password"] == "***"
    assert attributes["cfg"] == '{"apiKey": "***"}'
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "token=*** ***"
    assert "otlp-secret-77" not in attributes["exception.stacktrace"]
    assert "abc" not in attributes["exception.stacktrace"]


@pytest.mark.parametrize("value", ["", "abc"])
def test_short_secrets_are_refused(value: str) -> None:
    """register_secret refuses values too short to mask without garbling text."""
    with pytest.raises(ValueError, match="at least 4"):
        register_secret(value)


def test_non_string_secret_is_refused() -> None:
    """register_secret names the argument when given something that is not a str."""
    with pytest.raises(TypeError, match="register_secret"):
        register_secret(12345)  # type: ignore[arg-type]


EXCHANGE_HEADERS = {
    "API-Key": "kr-key-0001",
    "API-Sign": "kr-sign-0002",
    "X-MBX-APIKEY": "bn-key-0003",
    "CB-ACCESS-KEY": "cb-key-0004",
    "CB-ACCESS-SIGN": "cb-sign-0005",
    "CB-ACCESS-PASSPHRASE": "cb-pass-0006",
    "Authorization": "Bearer cb-jwt-0007",
}


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_exchange_credential_headers_are_masked_in_every_form(log_format: str, stream: io.StringIO) -> None:
    """Kraken, Binance and Coinbase credential headers are masked as a dict, as its repr and in a traceback."""
    setup_logging(MonitoringSettings(log_format=log_format), stream=stream)
    log = get_logger("ccxt")
    log.info("request", extra={"headers": EXCHANGE_HEADERS, "raw": list(EXCHANGE_HEADERS.items())})
    log.info("request headers %s", EXCHANGE_HEADERS)
    try:
        raise TimeoutError(f"kraken POST /0/private/Balance timed out, headers {EXCHANGE_HEADERS}")
    except TimeoutError:
        log.exception("fetch_balance failed")
    output = stream.getvalue()
    for value in EXCHANGE_HEADERS.values():
        assert value.split()[-1] not in output
    assert "CB-ACCESS-SIGN" in output  # the keys stay readable


@pytest.mark.parametrize(
    "key", ["SECRET_KEY", "aws_secret_access_key", "twofa", "otp", "access_key", "apiSign"]
)
def test_settings_style_and_ccxt_credential_keys_are_masked(key: str) -> None:
    """Django/AWS-style secret keys and ccxt's 2FA credential are masked by key and in text."""
    redactor = Redactor()
    assert redactor.field(key, "s3cr3t-value") == "***"
    assert redactor.text(f"loaded {key}=s3cr3t-value") == f"loaded {key}=***"


def test_otlp_attributes_mask_exchange_headers(stream: io.StringIO) -> None:
    """Over OTLP, exchange credential headers in extra and in the message are masked too."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    setup_logging(MonitoringSettings(), stream=stream, logger_provider=provider)
    get_logger("ccxt").info("sent %s", EXCHANGE_HEADERS, extra={"headers": EXCHANGE_HEADERS})
    record = exporter.get_finished_logs()[0].log_record
    exported = f"{record.body} {dict(record.attributes or {})}"
    for value in EXCHANGE_HEADERS.values():
        assert value.split()[-1] not in exported


def test_registered_secret_is_masked_url_encoded_too(stream: io.StringIO) -> None:
    """A registered base64 secret is masked also as it appears percent- or plus-encoded in a URL."""
    from urllib.parse import quote, urlencode

    secret = "kR4k/3n+S3cr3t=="
    register_secret(secret)
    setup_logging(MonitoringSettings(), stream=stream)
    log = get_logger("t")
    log.info("GET https://api.example.test/private?%s", urlencode({"k": secret}))
    log.info("GET https://api.example.test/private?k=%s", quote(secret))
    first, second = json_lines(stream)
    assert first["message"] == "GET https://api.example.test/private?k=***"
    assert second["message"] == "GET https://api.example.test/private?k=***"


def _spellings(key: str) -> set[str]:
    """snake_case, kebab-case, dotted, camelCase and UPPER spellings of a default key."""
    words = [w for w in re.split(r"[_\-.]|(?<=[a-z])(?=[A-Z])", key) if w]
    lower = [w.lower() for w in words]
    camel = lower[0] + "".join(w.title() for w in lower[1:])
    return {"_".join(lower), "-".join(lower), ".".join(lower), camel, "_".join(lower).upper()}


@pytest.mark.parametrize("key", DEFAULT_REDACT_KEYS)
def test_every_default_key_is_masked_in_text_in_every_spelling(key: str) -> None:
    """The quick pre-check never lets a default key through: each spelling, as key=value and key: value, is masked."""
    redactor = Redactor()
    for spelling in _spellings(key):
        assert redactor.text(f"sent {spelling}=v4lue-1 ok") == f"sent {spelling}=*** ok"
        assert redactor.text(f'{{"{spelling}": "v4lue-2"}}') == f'{{"{spelling}": "***"}}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connecting to redis://:s3cret-pw@10.0.0.5:6379/0", "connecting to redis://:***@10.0.0.5:6379/0"),
        ("db postgresql://bot:p%40ss@db:5432/x", "db postgresql://bot:***@db:5432/x"),
        ("proxy https://u:pw1@proxy:3128 and amqp://u:pw2@mq/", "proxy https://u:***@proxy:3128 and amqp://u:***@mq/"),
        ("no password https://user@host/x, mail ops@example.test", "no password https://user@host/x, mail ops@example.test"),
    ],
)
def test_passwords_in_urls_are_masked(text: str, expected: str) -> None:
    """The password part of a URL's user info is masked; user names and e-mail addresses stay."""
    assert Redactor().text(text) == expected


@pytest.mark.parametrize("unit", ['token="a,', "token='a,", '\\"apiKey\\": \\"a,'])
def test_hostile_quoting_is_redacted_in_linear_time(unit: str) -> None:
    """128 K characters of unclosed quoted secrets are masked in well under a second (quadratic took ~50 s)."""
    text = unit * (128_000 // len(unit))
    started = time.perf_counter()
    out = Redactor(max_chars=len(text)).text(text)
    assert time.perf_counter() - started < 3.0
    assert out.count("***") >= len(text) // len(unit) // 2
