"""[monitoring.alerts]: an AlertManager built from config.toml, credentials from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from otelres.config import ConfigError, load_config
from otelres.monitoring import (
    AlertManager,
    AlertRule,
    EmailAlertHandler,
    LogAlertHandler,
    MetricsCollector,
    WebhookAlertHandler,
)
from otelres.testing import FakeClock

CONFIG = """
[telemetry]
service_name = "configured-bot"

[monitoring.alerts]
breaker_open = true
health_red_seconds = 60
renotify_seconds = 600
webhook_url_env = "TEST_ALERT_WEBHOOK"
email_to = ["oncall@example.test"]
email_from = "bot@example.test"
smtp_host = "127.0.0.1"
smtp_port = 2525
smtp_username = "bot"
smtp_password_env = "TEST_SMTP_PASSWORD"

[[monitoring.alerts.rules]]
name = "order_rejects"
instrument = "bot.orders.rejected"
comparison = ">="
threshold = 3
window_seconds = 300
attributes = { exchange = "kraken" }
"""

ENV = {"TEST_ALERT_WEBHOOK": "http://127.0.0.1:9/hooks/abc-secret", "TEST_SMTP_PASSWORD": "pw-12345"}


def _config(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, environ={})


def _one_rule(tmp_path: Path, body: str) -> AlertRule:
    """The rule a config.toml holding one [[monitoring.alerts.rules]] table with *body* gives."""
    config = _config(tmp_path, "[[monitoring.alerts.rules]]\n" + body)
    (rule,) = AlertManager.from_config(config, environ={}).rules  # type: ignore[arg-type]
    return rule


def test_rules_and_handlers_come_from_the_file(tmp_path: Path) -> None:
    """The section's rules, handlers and timings make up the manager."""
    manager = AlertManager.from_config(_config(tmp_path, CONFIG), environ=ENV)  # type: ignore[arg-type]
    assert [rule.name for rule in manager.rules] == ["breaker_open", "health_red", "order_rejects"]
    rule = manager.rules[2]
    assert (rule.comparison, rule.threshold, rule.window_seconds) == (">=", 3, 300)
    assert dict(rule.attributes) == {"exchange": "kraken"}
    assert [type(h) for h in manager._handlers] == [LogAlertHandler, WebhookAlertHandler, EmailAlertHandler]
    assert manager.renotify_seconds == 600
    assert manager.service_name == "configured-bot"


def test_configured_rule_fires(tmp_path: Path) -> None:
    """A rule from the file fires on the pipeline like one built in code."""
    clock = FakeClock()
    text = CONFIG.split("[monitoring.alerts]")[0] + (
        "[monitoring.alerts]\nlog = false\n\n[[monitoring.alerts.rules]]\n"
        'name = "errors"\ninstrument = "bot.errors"\nthreshold = 0\n'
    )
    manager = AlertManager.from_config(_config(tmp_path, text), environ={}, clock=clock)  # type: ignore[arg-type]
    sent: list[object] = []
    manager.add_handler(sent.append)
    provider = MeterProvider(metric_readers=[manager.reader])
    MetricsCollector(meter_provider=provider).increment("bot.errors")
    assert len(manager.evaluate()) == 1
    assert len(sent) == 1
    provider.shutdown()


def test_rule_filters_take_one_value_or_a_list(tmp_path: Path) -> None:
    """attributes and exclude in [[monitoring.alerts.rules]] accept a value or a list of values."""
    rule = _one_rule(
        tmp_path,
        'name = "rejects"\ninstrument = "bot.orders.rejected"\n'
        'attributes = { exchange = ["kraken", "binance"] }\nexclude = { market = "test" }\n',
    )
    assert rule.matches({"exchange": "binance", "market": "spot"})
    assert not rule.matches({"exchange": "coinbase", "market": "spot"})
    assert not rule.matches({"exchange": "kraken", "market": "test"})


def test_rule_summaries_come_from_the_file(tmp_path: Path) -> None:
    """summary and resolved_summary in [[monitoring.alerts.rules]] shape the firing and resolved texts."""
    rule = _one_rule(
        tmp_path, 'name = "lag"\ninstrument = "bot.lag"\nsummary = "feed lags"\nresolved_summary = "feed caught up"\n'
    )
    assert rule.describe(9.0, {}) == "feed lags"
    assert rule.describe(0.0, {}, "resolved") == "feed caught up"


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    """Unset variables, a missing SMTP host and a refused rule are reported at once, by key."""
    text = """
[monitoring.alerts]
webhook_url_env = "TEST_UNSET_WEBHOOK"
email_to = ["oncall@example.test"]

[[monitoring.alerts.rules]]
name = "no_instrument"

[[monitoring.alerts.rules]]
name = "bad_window"
instrument = "x"
statistic = "max"
window_seconds = 60
"""
    with pytest.raises(ConfigError) as caught:
        AlertManager.from_config(_config(tmp_path, text), environ={})  # type: ignore[arg-type]
    problems = "\n".join(caught.value.problems)
    assert "monitoring.alerts.webhook_url_env: environment variable TEST_UNSET_WEBHOOK is not set" in problems
    assert "monitoring.alerts.smtp_host: required when email_to is set" in problems
    assert "monitoring.alerts.email_from: required when email_to is set" in problems
    assert "monitoring.alerts.rules[0]: AlertRule 'no_instrument': instrument" in problems
    assert "monitoring.alerts.rules[1]: " in problems
    assert "config.toml" in problems


def test_unknown_keys_in_the_section_are_config_errors(tmp_path: Path) -> None:
    """A typo in [monitoring.alerts] is caught when the file is loaded, with a suggestion."""
    with pytest.raises(ConfigError, match="did you mean 'breaker_open'"):
        _config(tmp_path, "[monitoring.alerts]\nbreaker_opn = true\n")
