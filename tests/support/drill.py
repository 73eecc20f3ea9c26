"""Fault drills: real `streamscore consume` processes, the embedded broker, a real database.

A :class:`Drill` owns one stream (unique topics and group, see tests/conftest.py
``make_settings``) and a backend URL. It starts consumers as subprocesses, produces
MNIST test images (plus :data:`MALFORMED` messages), watches the evaluation and
dead-letter topics from a background thread, and checks the one invariant of every
drill (:meth:`Drill.check_invariant`):

* every produced good image id is in the database predictions exactly once per
  served model version, and nothing else is;
* every good id appears on the evaluation topic at least once;
* the DLQ holds exactly the malformed messages (by source offset), each with its reason.

Completion is decided by counting ids, never by watermarks (the embedded broker's
high watermark is wrong). Every wait has a deadline and fails with what it saw.
"""


from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamscore.consumers.workers import worker_env
from streamscore.models import bundled_model
from streamscore.producers.images import produce_images
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.evaluation_events import record_kind
from streamscore.shared.kafka import assign_from_beginning, ensure_topics, flush, make_consumer, make_producer
from streamscore.shared.messages import headers_to_dict
from streamscore.shared.mnist import MnistSplit
from support.malformed import MALFORMED, MALFORMED_GOOD_IDS

#: settings every drill consumer runs with: small batches, short session, fast retries
DRILL_SETTINGS: dict[str, Any] = {
    "partitions": 4,
    "batch_size": 50,
    "linger_ms": 20,
    "session_timeout_ms": 3000,
    "retry_backoff_start_s": 0.2,
    "retry_backoff_max_s": 1.0,
    "stall_timeout_s": 4.0,
}

class Slice(MnistSplit):
    """Images ``start …`` of a split, keeping their ids (t10k-00500 stays t10k-00500)."""

    start: int = 0

    def image_id(self, index: int) -> str:
        return super().image_id(self.start + index)


def split_slice(split: MnistSplit, start: int, stop: int) -> MnistSplit:
    piece = Slice(split.split, split.images[start:stop], split.labels[start:stop])
    object.__setattr__(piece, "start", start)
    return piece


def wait_until(predicate: Callable[[], bool], timeout: float, what: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what}")
        time.sleep(0.1)


class TopicWatcher(threading.Thread):
    """Reads a topic from the beginning in the background and keeps every message's key and headers.

    Evaluation-topic records with a ``kind`` (model-rejected events) are kept apart in ``events``.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(name=f"watch-{topic}", daemon=True)
        self.settings, self.topic = settings, topic
        self.records: list[tuple[str | None, dict[str, bytes], bytes | None]] = []
        self.events: list[tuple[str, bytes | None]] = []
        self.evaluation_topic = topic == settings.predictions_topic
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        consumer = make_consumer(self.settings, f"drill-watch-{uuid.uuid4().hex[:8]}")
        try:
            assign_from_beginning(consumer, self.topic)
            while not self._halt.is_set():
                for message in consumer.consume(500, 0.2):
                    if message.error():
                        continue
                    key = message.key()
                    record = (None if key is None else key.decode("utf-8", "replace"),
                              headers_to_dict(message.headers()), message.value())
                    kind = record_kind(message.headers(), message.value()) if self.evaluation_topic else None
                    with self._lock:
                        if kind is None:
                            self.records.append(record)
                        else:
                            self.events.append((kind, message.value()))
        finally:
            consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def ids(self) -> set[str | None]:
        with self._lock:
            return {key for key, _, _ in self.records}

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def snapshot(self) -> list[tuple[str | None, dict[str, bytes], bytes | None]]:
        with self._lock:
            return list(self.records)


@dataclass
class ConsumerProcess:
    """One `streamscore consume` subprocess with its JSON log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(raw))
        return lines

    def events(self, name: str, **data: Any) -> list[dict[str, Any]]:
        """The log records marking event ``name`` whose data has the given values (streamscore.logs.EVENTS)."""
        return [line for line in self.log_lines() if line.get("event") == name
                and all((line.get("data") or {}).get(key) == value for key, value in data.items())]

    def wait_event(self, name: str, timeout: float = 30, count: int = 1, **data: Any) -> None:
        """Until ``count`` records of event ``name`` (with ``data``) are logged; fails if the process exits first."""
        def seen() -> bool:
            found = len(self.events(name, **data)) >= count
            if not found and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}) before logging event "
                                     f"{name!r} {data or ''}:\n{self.tail()}")
            return found

        wait_until(seen, timeout, lambda: f"{self.name} to log event {name!r} {data or ''} x{count}:\n{self.tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM: finish the batch, commit, close; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s:\n{self.tail()}") from None


@dataclass
class Drill:
    settings: Settings
    backend_url: str
    workdir: Path
    split: MnistSplit
    consumers: list[ConsumerProcess] = field(default_factory=list)
    produced_ids: set[str] = field(default_factory=set)
    malformed_offsets: dict[tuple[int, int], str] = field(default_factory=dict)
    _watchers: dict[str, TopicWatcher] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ensure_topics(self.settings)
        publish_model(self.settings, bundled_model(1))
        for topic in (self.settings.predictions_topic, self.settings.dlq_topic):
            self._watchers[topic] = TopicWatcher(self.settings, topic)
            self._watchers[topic].start()

    def rewatch(self) -> None:
        """Read the evaluation and dead-letter topics anew from the beginning (after a broker restart wiped them)."""
        for topic, watcher in list(self._watchers.items()):
            watcher.stop()
            self._watchers[topic] = TopicWatcher(self.settings, topic)
            self._watchers[topic].start()

    @property
    def predictions(self) -> TopicWatcher:
        return self._watchers[self.settings.predictions_topic]

    @property
    def dlq(self) -> TopicWatcher:
        return self._watchers[self.settings.dlq_topic]

    # -- processes ---------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = worker_env(self.settings, 0)
        env |= {f"STREAMSCORE_{k.upper()}": str(v) for k, v in DRILL_SETTINGS.items()}
        env |= {"STREAMSCORE_LOG_JSON": "true", "STREAMSCORE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "STREAMSCORE_BACKEND": self.backend_url}
        env.pop("STREAMSCORE_FAULT_POINT", None)
        return env | extra

    def start_consumer(self, *args: str, backend_url: str | None = None, **env: str) -> ConsumerProcess:
        name = f"consumer-{len(self.consumers)}"
        log_path = self.workdir / f"{name}.log"
        environment = self.env(**env)
        if backend_url is not None:
            environment["STREAMSCORE_BACKEND"] = backend_url
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamscore.cli", "consume", "--metrics-host", "127.0.0.1", *args],
                env=environment, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        consumer = ConsumerProcess(name, process, log_path)
        self.consumers.append(consumer)
        return consumer

    def close(self) -> None:
        for consumer in self.consumers:
            if consumer.process.poll() is None:
                consumer.process.kill()
                consumer.process.wait()
        for watcher in self._watchers.values():
            watcher.stop()

    # -- input -------------------------------------------------------------------------------
    def produce(self, start: int, stop: int, rate: float | None = None) -> None:
        piece = split_slice(self.split, start, stop)
        report = produce_images(self.settings, piece, rate=rate)
        assert report.failed == 0, report.errors
        self.produced_ids |= {piece.image_id(i) for i in range(len(piece))}

    def produce_in_background(self, start: int, stop: int, rate: float) -> threading.Thread:
        thread = threading.Thread(target=self.produce, args=(start, stop, rate), daemon=True)
        thread.start()
        return thread

    def send_malformed(self) -> None:
        """The malformed and hostile messages; remembers where the bad ones landed."""
        producer = make_producer(self.settings)
        landed: list[tuple[int, int, str]] = []
        for key, value, headers, reason in MALFORMED:
            def delivered(err: Any, msg: Any, reason: str | None = reason) -> None:
                assert err is None, err
                if reason is not None:
                    landed.append((msg.partition(), msg.offset(), reason))
            producer.produce(self.settings.images_topic, key=key, value=value,
                             headers=[(name, data) for name, data in headers], on_delivery=delivered)
        flush(producer)
        self.malformed_offsets |= {(p, o): r for p, o, r in landed}
        self.produced_ids |= MALFORMED_GOOD_IDS

    # -- waiting -----------------------------------------------------------------------------
    def wait_predicted(self, ids: set[str] | None = None, timeout: float = 40) -> None:
        wanted = self.produced_ids if ids is None else ids
        wait_until(lambda: wanted <= self.predictions.ids(), timeout,
                   lambda: f"{len(wanted - self.predictions.ids())} of {len(wanted)} ids on the evaluation topic "
                           f"(missing e.g. {sorted(wanted - self.predictions.ids())[:5]}); consumer logs:\n"
                           + "\n".join(c.tail(8) for c in self.consumers))

    def wait_dead_letters(self, timeout: float = 30) -> None:
        wait_until(lambda: set(self.malformed_offsets) <= self.dlq_sources(), timeout,
                   lambda: f"DLQ sources {sorted(self.dlq_sources())} to cover {sorted(self.malformed_offsets)}")

    def dlq_sources(self) -> set[tuple[int, int]]:
        return {(int(h["source.partition"]), int(h["source.offset"])) for _, h, _ in self.dlq.snapshot()}

    # -- the invariant -----------------------------------------------------------------------
    def check_invariant(self, rows: list[tuple[str, int]], image_ids: set[str]) -> None:
        """``rows``: (image_id, model_version) of every prediction row; ``image_ids``: the images table."""
        counts: dict[tuple[str, int], int] = {}
        for row in rows:
            counts[row] = counts.get(row, 0) + 1
        duplicated = {row: n for row, n in counts.items() if n > 1}
        assert not duplicated, f"prediction rows stored more than once: {list(duplicated.items())[:5]}"
        predicted = {image_id for image_id, _ in rows}
        wanted = self.produced_ids
        assert predicted == wanted, f"missing {sorted(wanted - predicted)[:5]}, extra {sorted(predicted - wanted)[:5]}"
        assert image_ids == wanted, f"images table: unexpected {sorted(image_ids - wanted)[:5]}"
        on_topic = {key for key in self.predictions.ids() if key is not None}
        assert wanted <= on_topic, f"not on the evaluation topic: {sorted(wanted - on_topic)[:5]}"
        assert on_topic <= wanted, f"unexpected on the evaluation topic: {sorted(on_topic - wanted)[:5]}"
        reasons = {(int(h["source.partition"]), int(h["source.offset"])): h["error.reason"].decode()
                   for _, h, _ in self.dlq.snapshot()}
        expected = self.malformed_offsets
        assert reasons == expected, f"DLQ {sorted(reasons.items())} != {sorted(expected.items())}"


@contextlib.contextmanager
def drill(settings: Settings, backend_url: str, workdir: Path, split: MnistSplit) -> Iterator[Drill]:
    running = Drill(settings, backend_url, workdir, split)
    try:
        yield running
    finally:
        running.close()


def drill_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    return make_settings(**(DRILL_SETTINGS | overrides))


def healthz(port: int) -> tuple[int, str]:
    """Status and body of a consumer's /healthz (0 and the error when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError as error:
        return 0, str(error)
