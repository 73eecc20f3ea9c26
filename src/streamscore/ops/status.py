"""`streamscore status`: lag per partition, model versions, dead letters, group members.

Lag is the high watermark minus the group's committed offset. On the embedded
broker (Tansu) the high watermark can be too low (DESIGN.md), so its lag figures
are approximate there and say so. The DLQ count is made by reading the topic and
counting distinct source offsets, never from watermarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamscore.errors import BackendError, KafkaError
from streamscore.ops.topic_summary import count_dead_letters, published_models
from streamscore.shared.config import Settings
from streamscore.shared.kafka import (
    client_config,
    describe_kafka_error,
    existing_topics,
    make_consumer,
)


@dataclass
class PartitionStatus:
    partition: int
    committed: int | None
    stored: int | None
    high: int | None
    lag: int | None


@dataclass
class Status:
    group: str
    topic: str
    partitions: list[PartitionStatus] = field(default_factory=list)
    members: int | None = None
    group_state: str | None = None
    published_versions: list[int] = field(default_factory=list)
    installed_versions: list[int] | None = None
    database_error: str | None = None
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    approximate_lag: bool = True

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group, "topic": self.topic, "members": self.members, "group_state": self.group_state,
            "partitions": [vars(p) for p in self.partitions], "total_lag": self.total_lag,
            "lag_is_approximate": self.approximate_lag,
            "published_model_versions": self.published_versions, "installed_model_versions": self.installed_versions,
            "database_error": self.database_error, "dead_letters": self.dead_letters,
            "dead_letter_reasons": self.dead_letter_reasons,
        }


def collect_status(settings: Settings, backend_url: str | None = None, idle_s: float = 1.0,
                   embedded: bool = True, kafka_timeout: float | None = None) -> Status:
    """Ask Kafka (and the database, when a backend URL is given) where the scorers stand.

    Raises KafkaError (one line) when Kafka does not answer within ``kafka_timeout`` seconds
    (default: ``settings.kafka_timeout_s``).
    """
    existing_topics(settings, kafka_timeout)  # fail fast, in one line, before the clients below retry for long
    status = Status(settings.group, settings.images_topic, approximate_lag=embedded)
    stored: dict[int, int] = {}
    if backend_url:
        from streamscore.backends import open_configured_backend

        try:
            with open_configured_backend(settings, backend_url) as database:
                stored = database.stored_offsets(settings.group, settings.images_topic)
                status.installed_versions = database.installed_versions(settings.model_name)
        except BackendError as exc:
            status.database_error = exc.message
    consumer = make_consumer(settings, settings.group)  # never subscribes: reads the group's commits only
    try:
        try:
            metadata = consumer.list_topics(settings.images_topic, timeout=10).topics.get(settings.images_topic)
            numbers = sorted(metadata.partitions) if metadata is not None and metadata.partitions else []
            committed = consumer.committed([TopicPartition(settings.images_topic, p) for p in numbers], timeout=10)
        except KafkaException as exc:
            raise KafkaError(f"cannot read the committed offsets of group {settings.group}: "
                             f"{describe_kafka_error(exc)}; is Kafka up?") from None
        for tp in committed:
            partition = int(tp.partition)
            offset = tp.offset if tp.offset is not None and tp.offset >= 0 else None
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            except KafkaException:
                low, high = None, None
            start = offset if offset is not None else low
            lag = max(0, high - start) if high is not None and start is not None else None
            status.partitions.append(PartitionStatus(partition, offset, stored.get(partition), high, lag))
    finally:
        consumer.close()
    try:
        admin = AdminClient(client_config(settings))
        group = admin.describe_consumer_groups([settings.group])[settings.group].result(timeout=10)
        status.group_state = str(getattr(group.state, "name", group.state))
        # the embedded broker answers STABLE with no members: unknown, not zero
        status.members = len(group.members) if group.members or status.group_state != "STABLE" else None
    except Exception:  # groups that never joined, brokers without the API: leave it blank
        status.members = None
    status.published_versions = list(published_models(settings, idle_s))
    dead_letters = count_dead_letters(settings, idle_s)
    status.dead_letters, status.dead_letter_reasons = dead_letters.total, dead_letters.by_reason
    return status


def status_table(status: Status) -> Any:
    """The status as a rich Table (lag per partition; the caption holds models and the DLQ)."""
    from rich.table import Table

    note = " (approximate on the embedded broker)" if status.approximate_lag else ""
    members = "?" if status.members is None else str(status.members)
    table = Table(title=f"group {status.group} on {status.topic}: {members} member(s), "
                        f"{status.group_state or 'state unknown'}")
    for column in ("partition", "committed (Kafka)", "stored (DB)", "high watermark", f"lag{note}"):
        table.add_column(column, justify="right")

    def show(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    for p in status.partitions:
        table.add_row(str(p.partition), show(p.committed), show(p.stored), show(p.high), show(p.lag))
    if status.database_error:
        installed = f"database unavailable: {status.database_error}"
    elif status.installed_versions is None:
        installed = "not read"
    else:
        installed = ", ".join(f"v{v}" for v in status.installed_versions) or "none"
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(status.dead_letter_reasons.items()))
    table.caption = (
        f"total lag {status.total_lag:,}{note}\n"
        f"models on the topic: {', '.join(f'v{v}' for v in status.published_versions) or 'none'}; "
        f"installed in the database: {installed} (the newest serves)\n"
        f"dead letters: {status.dead_letters:,}" + (f" ({reasons})" if reasons else "")
    )
    return table
