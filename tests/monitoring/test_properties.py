"""Properties: any extra gives one valid JSON line, and a registered secret never survives."""

from __future__ import annotations

import json
import logging
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from otelres.monitoring import JsonLogFormatter, Redactor, TextLogFormatter, register_secret
from otelres.monitoring._redaction import _forget_secrets

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(), st.binary()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)
SECRETS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="*"), min_size=4, max_size=24
)


def _record(msg: Any, extra: dict[str, Any]) -> logging.LogRecord:
    record = logging.LogRecord("prop", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(extra)  # as logging.Logger.makeRecord stores extra
    return record


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=st.dictionaries(st.text(min_size=1, max_size=10), VALUES, max_size=5), msg=st.text())
def test_any_extra_gives_one_valid_json_line(extra: dict[str, Any], msg: str) -> None:
    """Whatever the extra values, the JSON formatter writes exactly one parseable JSON object line."""
    line = JsonLogFormatter().format(_record(msg, extra))
    assert "\n" not in line
    data = json.loads(line)
    assert data["logger"] == "prop"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRETS, before=st.text(max_size=20), after=st.text(max_size=20))
def test_registered_secret_never_survives(secret: str, before: str, after: str) -> None:
    """A registered secret embedded anywhere in message or fields is gone from JSON and text output."""
    _forget_secrets()
    register_secret(secret)
    text = before + secret + after
    record = _record(text, {"note": text, "nested": {"list": [text]}})
    data = json.loads(JsonLogFormatter().format(record))
    for value in (data["message"], data["note"], data["nested"]["list"][0]):
        assert secret not in value
    # The line's own frame (timestamp, level, logger and field names) is no secret: a
    # "secret" such as "INFO" or "2026" is found there, not in what was logged.
    frame = _record("", {"note": "", "nested": {"list": [""]}})
    frame.created, frame.msecs = record.created, record.msecs
    assume(secret not in TextLogFormatter().format(frame))
    assert secret not in TextLogFormatter().format(record)


@given(key=st.sampled_from(["api_key", "apiKey", "x-api-key", "password", "client_secret"]), value=VALUES)
def test_sensitive_key_masks_any_value(key: str, value: Any) -> None:
    """A sensitive key's value is masked whatever its type."""
    assert Redactor().field(key, value) == "***"


REDACTOR = Redactor()
KEYS_IN_TEXT = st.sampled_from(["apiKey", "api_key", "password", "token", "X-Api-Key", "client_secret"])
PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ", max_size=12)


@settings(max_examples=150, deadline=None)
@given(key=KEYS_IN_TEXT, secret=st.text(), other=PLAIN, ascii_only=st.booleans())
@example(key="apiKey", secret='ab"cd', other="x", ascii_only=True)
@example(key="token", secret='a", "z": "b\\', other="x", ascii_only=False)
def test_json_text_masks_any_secret_string_whole(key: str, secret: str, other: str, ascii_only: bool) -> None:
    """JSON text holding a secret with quotes, backslashes or escapes comes out as valid JSON with only that value masked."""
    text = json.dumps({key: secret, "note": other}, ensure_ascii=ascii_only)
    assert json.loads(REDACTOR.text(text)) == {key: "***", "note": other}


@settings(max_examples=150, deadline=None)
@given(key=KEYS_IN_TEXT, secret=st.text(), other=PLAIN)
def test_json_inside_a_json_string_masks_the_secret_whole(key: str, secret: str, other: str) -> None:
    """JSON encoded twice (a response body inside a JSON string) keeps its shape, with only the secret masked."""
    text = json.dumps(json.dumps({key: secret, "note": other}))
    assert json.loads(json.loads(REDACTOR.text(text))) == {key: "***", "note": other}


@settings(max_examples=150, deadline=None)
@given(
    key=KEYS_IN_TEXT,
    secret=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")),
    quote=st.sampled_from(['"', "'"]),
    tail=st.sampled_from(["", " next=1", ", user=bob", "}"]),
)
def test_quoted_value_with_backslash_escapes_is_masked_whole(key: str, secret: str, quote: str, tail: str) -> None:
    """key="..." / key='...' with backslash-escaped quotes inside masks the whole quoted value and nothing after it."""
    escaped = secret.replace("\\", "\\\\").replace(quote, "\\" + quote)
    text = f"login {key}={quote}{escaped}{quote}{tail}"
    assert REDACTOR.text(text) == f"login {key}={quote}***{quote}{tail}"
