"""Client configuration precedence: user settings tune, but never switch off what correctness needs."""

from __future__ import annotations

from streamscore.shared.config import load_settings
from streamscore.shared.kafka import client_config


def test_user_config_overrides_tuning_but_not_correctness() -> None:
    settings = load_settings(kafka_config='{"fetch.wait.max.ms": 5, "enable.auto.commit": true, '
                                          '"security.protocol": "SASL_SSL"}')
    config = client_config(settings, tuning={"fetch.wait.max.ms": 20}, required={"enable.auto.commit": False})
    assert config["fetch.wait.max.ms"] == 5
    assert config["enable.auto.commit"] is False
    assert config["security.protocol"] == "SASL_SSL"
    assert config["bootstrap.servers"] == settings.kafka_bootstrap
