"""Global options are defined once: given before the command they apply; a command's own flag wins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamscore.cli_options import GLOBALS, backend_was_chosen, bootstrap_given, set_globals, settings_from
from streamscore.consumers.workers import worker_env


@pytest.fixture(autouse=True)
def clean_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("STREAMSCORE_KAFKA_BOOTSTRAP", "STREAMSCORE_BACKEND", "STREAMSCORE_LOG_JSON"):
        monkeypatch.delenv(name, raising=False)
    yield
    set_globals(None, None, False, False)


def test_global_options_reach_the_settings() -> None:
    set_globals("kafka-a:9092", "duckdb:///global.duckdb", True, False)
    settings = settings_from()
    assert settings.kafka_bootstrap == "kafka-a:9092"
    assert settings.backend_url == "duckdb:///global.duckdb"
    assert settings.log_json
    assert backend_was_chosen(None) and bootstrap_given(None)


def test_a_commands_own_flag_wins() -> None:
    set_globals("kafka-a:9092", "duckdb:///global.duckdb", False, False)
    settings = settings_from(kafka_bootstrap="kafka-b:9092", backend="duckdb:///own.duckdb")
    assert (settings.kafka_bootstrap, settings.backend_url) == ("kafka-b:9092", "duckdb:///own.duckdb")


def test_log_json_reaches_every_worker_process() -> None:
    settings = settings_from(log_json=True)  # `consume --workers N --log-json`
    assert worker_env(settings, 1, base={})["STREAMSCORE_LOG_JSON"] == "true"
    set_globals(None, None, True, False)  # `streamscore --log-json consume --workers N`
    assert worker_env(settings_from(), 0, base={})["STREAMSCORE_LOG_JSON"] == "true"


def test_without_flags_nothing_was_chosen() -> None:
    set_globals(None, None, False, False)
    assert not backend_was_chosen(None) and not bootstrap_given(None)
    assert not GLOBALS.log_json
