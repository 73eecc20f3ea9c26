"""Settings precedence, validation, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscore.backends import BackendURL, mask_url, open_backend, resolve_backend
from streamscore.errors import ConfigError
from streamscore.shared.config import load_settings


def test_env_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCORE_BATCH_SIZE", "250")
    monkeypatch.setenv("STREAMSCORE_IMAGES_TOPIC", "from-env")
    settings = load_settings(images_topic="from-flag", group=None)
    assert settings.batch_size == 250
    assert settings.images_topic == "from-flag"
    assert settings.group == "streamscore-scorers"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("STREAMSCORE_LINGER_MS=7\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().linger_ms == 7


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.batch_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(("name", "value"), [("batch_size", 0), ("duckdb_scorer", "gpu"), ("kafka_config", "[1]"),
                                             ("kafka_config", "{nope")])
def test_invalid_values_name_the_setting(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(**{name: value})


def test_backend_password_never_printed() -> None:
    settings = load_settings(backend="postgresql://app:s3cret@db:5432/scores")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())
    url = BackendURL.parse(settings.backend_url)
    assert url.password == "s3cret"
    assert "s3cret" not in repr(url) and "s3cret" not in str(url)
    assert mask_url("oracle://u:p%40ss@h:1521/svc") == "oracle://u:***@h:1521/svc"


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'postgresql'"):
        resolve_backend("postgresq")


def test_not_a_url_explains_the_forms() -> None:
    with pytest.raises(ConfigError, match="duckdb:///"):
        open_backend("scores.db")


def test_duckdb_url_forms(tmp_path: Path) -> None:
    assert open_backend("duckdb:///rel/x.db").path == "rel/x.db"  # type: ignore[attr-defined]
    assert open_backend(f"duckdb:///{tmp_path}/x.db").path == f"{tmp_path}/x.db"  # type: ignore[attr-defined]
    assert open_backend("duckdb:///:memory:").path == ":memory:"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="scorer"):
        open_backend("duckdb:///:memory:?scorer=gpu")


def test_missing_duckdb_folder_is_a_config_error(tmp_path: Path) -> None:
    backend = open_backend(f"duckdb:///{tmp_path}/missing/x.db")
    with pytest.raises(ConfigError, match="does not exist"):
        backend.connect()
