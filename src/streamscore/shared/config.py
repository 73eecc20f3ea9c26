"""Frozen settings for every streamscore command.

Every value can come from (lowest to highest precedence) its default, a ``.env``
file in the working directory, an environment variable, or a CLI flag. The
variables, all prefixed ``STREAMSCORE_``:

STREAMSCORE_KAFKA_BOOTSTRAP       Kafka bootstrap servers (host:port[,host:port])
STREAMSCORE_KAFKA_CONFIG          extra librdkafka settings as JSON, e.g. SASL (secret)
STREAMSCORE_KAFKA_TIMEOUT_S       seconds a command waits for Kafka to answer before it stops in one line (15)
STREAMSCORE_IMAGES_TOPIC          default mnist.images
STREAMSCORE_MODELS_TOPIC          default mnist.models
STREAMSCORE_PREDICTIONS_TOPIC     default mnist.predictions (the evaluation topic)
STREAMSCORE_DLQ_TOPIC             default mnist.dlq
STREAMSCORE_PARTITIONS            partitions of the images topic when streamscore creates it
STREAMSCORE_GROUP                 consumer group of the scorers
STREAMSCORE_BACKEND               backend URL (duckdb:///path, postgresql://..., oracle://..., kinetica://...)
STREAMSCORE_BATCH_SIZE            images per database batch
STREAMSCORE_LINGER_MS             longest wait for a batch to fill
STREAMSCORE_SESSION_TIMEOUT_MS    consumer group session timeout
STREAMSCORE_DUCKDB_SCORER         udf (vectorized Arrow UDF) or sql (list functions)
STREAMSCORE_MNIST_DIR             directory with the four MNIST IDX .gz files
STREAMSCORE_MODEL_NAME            the model key on the models topic
STREAMSCORE_MODEL_PUBLIC_KEY      Ed25519 public key (PEM text); when set, consumers accept only models signed by it
STREAMSCORE_MODEL_PUBLIC_KEY_FILE the same, from a PEM file (set one of the two)
STREAMSCORE_MODEL_SIGN_KEY_FILE   Ed25519 private key (PEM file) that publish-model and train --publish sign with
STREAMSCORE_METRICS_PORT          Prometheus port (0 = off)
STREAMSCORE_LOG_JSON              structured JSON logs
STREAMSCORE_MAX_BATCH_RETRIES     retriable errors on one batch (database answering) before the consumer stops
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamscore.errors import ConfigError


def default_mnist_dir() -> Path:
    """The shared data folder of a source checkout, else ``./data/mnist``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data" / "mnist"
        if candidate.is_dir():
            return candidate
    return Path("data/mnist")


class Settings(BaseSettings):
    """Everything a streamscore process needs to know; built once in the CLI and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMSCORE_", env_file=".env", extra="ignore", frozen=True
    )

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_config: SecretStr = SecretStr("{}")
    #: how long a command waits for Kafka to answer at start (topics, metadata) before it stops in one line
    kafka_timeout_s: float = Field(default=15.0, gt=0)
    images_topic: str = "mnist.images"
    models_topic: str = "mnist.models"
    predictions_topic: str = "mnist.predictions"
    dlq_topic: str = "mnist.dlq"
    partitions: int = Field(default=4, ge=1)
    group: str = "streamscore-scorers"
    backend: SecretStr = SecretStr("duckdb:///streamscore.duckdb")
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    linger_ms: int = Field(default=50, ge=0)
    session_timeout_ms: int = Field(default=6000, ge=1000)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    duckdb_scorer: Literal["udf", "sql"] = "udf"
    mnist_dir: Path = Field(default_factory=default_mnist_dir)
    model_name: str = "mlp"
    #: consumers: install and canary-check a newly published version on a second database session while
    #: batches go on, so a swap costs the loop only the switch (consumers/install_ahead.py); unset: the
    #: engine's default (Backend.install_ahead)
    install_ahead: bool | None = None
    #: consumers: threads of the BLAS under numpy in the consumer's process (DuckDB's UDF scores there);
    #: 0 leaves the library's default (a thread per core). One: consumers/blas_threads.py
    blas_threads: int = Field(default=1, ge=0)
    #: consumers: the Ed25519 public key models must be signed by (PEM text, or a file); see model/signing.py
    model_public_key: str | None = None
    model_public_key_file: Path | None = None
    #: publishers: the Ed25519 private key to sign with (`--sign-key` overrides it)
    model_sign_key_file: Path | None = None
    #: the HMAC key of earlier versions: refused with a message naming its replacement (docs/decisions.md)
    signing_key: SecretStr | None = None
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_json: bool = False
    retry_backoff_start_s: float = Field(default=0.5, gt=0)
    retry_backoff_max_s: float = Field(default=15.0, gt=0)
    stall_timeout_s: float = Field(default=60.0, gt=0)
    #: a retriable error repeated this often on one batch while the database answers is treated as permanent
    max_batch_retries: int = Field(default=10, ge=1)

    @field_validator("kafka_config")
    @classmethod
    def _kafka_config_is_json_object(cls, value: SecretStr) -> SecretStr:
        try:
            parsed = json.loads(value.get_secret_value() or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"STREAMSCORE_KAFKA_CONFIG is not valid JSON ({exc.msg})") from None
        if not isinstance(parsed, dict):
            raise ValueError("STREAMSCORE_KAFKA_CONFIG must be a JSON object of librdkafka settings")
        return value

    @field_validator("signing_key")
    @classmethod
    def _hmac_key_is_replaced(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raise ValueError(
                "STREAMSCORE_SIGNING_KEY (shared HMAC key) is no longer supported: every consumer holding it "
                "could forge models. Unset it; sign with an Ed25519 key (`streamscore keys generate --out DIR`, "
                "`publish-model --sign-key DIR/model-signing.key.pem`) and give consumers "
                "STREAMSCORE_MODEL_PUBLIC_KEY_FILE=DIR/model-signing.pub.pem")
        return value

    def extra_kafka_config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.kafka_config.get_secret_value() or "{}")
        return loaded

    @property
    def backend_url(self) -> str:
        return self.backend.get_secret_value()

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given values (None means "not given on the command line")."""
        given = {key: value for key, value in overrides.items() if value is not None}
        if not given:
            return self
        for secret in ("backend", "kafka_config", "signing_key"):
            if secret in given and isinstance(given[secret], str):
                given[secret] = SecretStr(given[secret])
        merged = self.model_dump() | given
        return Settings.model_validate(merged)


def load_settings(**overrides: Any) -> Settings:
    """Read env and .env, then apply CLI overrides; raise ConfigError naming the bad value."""
    from pydantic import ValidationError

    try:
        return Settings().with_overrides(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
