"""The one exception tree of streamscore.

Every error carries a short, stable ``reason`` code (reused as the DLQ
``error.reason`` header) and a ``retriable`` flag, so callers can ask what to do
with an error instead of matching message text. Messages say what happened and
what to do about it; they never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ErrorKind:
    """What a driver exception means to the consume loop (``Backend.classify``).

    ``kind``: "data" (these rows are bad: bisect and dead-letter), "retriable" (an outage: pause,
    wait, retry) or "fatal" (retrying will not help: stop with the message). ``reason`` is the
    short stable code the translated error carries; ``retry_after`` the seconds to wait at least
    before a retry (None: the loop's own backoff).
    """

    kind: Literal["data", "retriable", "fatal"]
    reason: str
    retry_after: float | None = None


class StreamscoreError(Exception):
    """Root of every error raised by streamscore."""

    reason: str = "error"
    retriable: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class ConfigError(StreamscoreError):
    """A setting, URL or command-line value is wrong; fix the configuration."""

    reason = "config"


class MissingDependencyError(ConfigError):
    """An optional driver or extra is not installed; the message names the pip command."""

    reason = "missing-dependency"


class LifecycleError(ConfigError):
    """A model lifecycle command that cannot apply to the current state (promote, withdraw, rollback)."""

    reason = "lifecycle"


class DataFileError(StreamscoreError):
    """An MNIST file is missing, truncated or fails its checksum."""

    reason = "data-file"


class MessageError(StreamscoreError):
    """A Kafka message cannot be decoded; it goes to the dead-letter topic."""

    reason = "bad-message"


class ArtifactError(StreamscoreError):
    """A model artifact fails verification; it is rejected and the current model keeps serving."""

    reason = "bad-artifact"


class BackendError(StreamscoreError):
    """A database operation failed for a reason that retrying will not fix (schema, permissions)."""

    reason = "backend"


class BackendUnavailable(BackendError):
    """The database is unreachable or a transaction failed transiently; retry after a pause."""

    reason = "backend-unavailable"
    retriable = True

    def __init__(self, message: str, *, retry_after: float = 1.0, reason: str | None = None):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class BackendDataError(BackendError):
    """The database rejected rows for a data reason (constraint, type); bisect and dead-letter them."""

    reason = "db-rejected"


class KafkaError(StreamscoreError):
    """The Kafka client reported an error (delivery failure, unreachable broker)."""

    reason = "kafka"


class BrokerError(StreamscoreError):
    """The embedded broker could not be started."""

    reason = "broker"


class BenchError(StreamscoreError):
    """A benchmark could not measure what it set out to (a process did not start or join)."""

    reason = "bench"
