"""Keeping credentials out of telemetry: cleaning URLs, messages, tracebacks and ccxt's log lines.

ccxt puts the signed URL (Binance's ``signature=`` query), response bodies and, at DEBUG
level or with ``verbose=True``, request headers (Kraken ``API-Key``/``API-Sign``, Binance
``X-MBX-APIKEY``, Coinbase ``CB-ACCESS-*``, ``Authorization``) and bodies (``nonce=``)
into exception messages and log lines. :func:`clean_text` removes all of them, plus any
literal occurrence of the client's own credentials.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["REDACTED", "CcxtLogRedactor", "clean_text", "credential_values"]

REDACTED = "***"

# Request parameters that carry credentials, signatures or one-time values.
_SECRET_PARAMS = (
    "signature|sign|api_?key|apikey|key|secret|password|passphrase|token|access_?token"
    "|nonce|otp|twofa|uid|auth|authorization"
)
_QUERY = re.compile(rf"(?i)(?<![a-z0-9_])({_SECRET_PARAMS})=([^&\s'\",]*)")
# Header names as they appear in dict reprs, JSON and "Name: value" lines.
_SECRET_HEADERS = (
    "api-key|api-sign|x-mbx-apikey|cb-access-key|cb-access-sign|cb-access-passphrase"
    "|cb-access-timestamp|authorization|ok-access-key|ok-access-sign|ok-access-passphrase"
    "|x-bapi-api-key|x-bapi-sign|kc-api-key|kc-api-sign|kc-api-passphrase|x-api-key|x-api-sign"
)
_HEADER_QUOTED = re.compile(rf"(?i)(['\"]({_SECRET_HEADERS})['\"]\s*:\s*)(['\"])(.*?)\3")
_HEADER_LINE = re.compile(rf"(?im)^(\s*({_SECRET_HEADERS})\s*:\s*)(.+)$")
_JSON_FIELD = re.compile(rf"(?i)(['\"]({_SECRET_PARAMS})['\"]\s*:\s*)(['\"])(.*?)\3")

# ccxt attributes that hold credentials.
_CREDENTIAL_ATTRIBUTES = (
    "apiKey", "secret", "password", "uid", "login", "twofa", "privateKey", "token",
)


def credential_values(exchange: Any) -> tuple[str, ...]:
    """The credential strings set on a ccxt *exchange* (long enough to be worth matching)."""
    values = []
    for attribute in _CREDENTIAL_ATTRIBUTES:
        value = getattr(exchange, attribute, None)
        if isinstance(value, str) and len(value) >= 4:
            values.append(value)
    # Longest first, so a secret that contains another one is replaced whole.
    return tuple(sorted(values, key=len, reverse=True))


def clean_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """*text* with credentials, signatures and nonces replaced by ``***``.

    Removes the values of secret query/form parameters (``signature=``, ``nonce=``,
    ``apiKey=``...), of secret headers in dict reprs, JSON and header lines, and every
    literal occurrence of *secrets* (the client's own credentials).
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "=" in text:
        text = _QUERY.sub(rf"\1={REDACTED}", text)
    if ":" in text:
        text = _HEADER_QUOTED.sub(rf"\1\3{REDACTED}\3", text)
        text = _JSON_FIELD.sub(rf"\1\3{REDACTED}\3", text)
        text = _HEADER_LINE.sub(rf"\1{REDACTED}", text)
    return text


class CcxtLogRedactor(logging.Filter):
    """A logging filter for ccxt's loggers that cleans each record before it is emitted.

    ccxt logs request headers and bodies at DEBUG level, and urllib3 (under sync ccxt)
    logs each signed URL; the instrumentor installs this filter on
    ``ccxt.base.exchange``, ``ccxt.async_support.base.exchange`` and
    ``urllib3.connectionpool`` so that no handler ever sees a key, signature or nonce.
    It runs only for records that are actually emitted, so it costs nothing while DEBUG
    is off.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business, not ours
            return True
        cleaned = clean_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
