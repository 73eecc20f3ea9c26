"""Scale-out and recovery benchmarks with real `streamscore consume` processes.

* :func:`scaleout_benchmark` — images/s with 1 and 2 consumer processes of one group
  (PostgreSQL: DuckDB takes one writer). The workers join first (the group is stable
  with N members, so no rebalance falls inside the measurement); then the images are
  produced as fast as possible and the clock runs from the first send to the last
  prediction on the evaluation topic: producer, broker and consumers share the machine.
* :func:`recovery_benchmark` — a consumer is SIGKILLed under a steady stream and
  restarted at once; the figure is restart → first new prediction, split into process
  start-up (imports, database, model) and group join (which waits for the killed
  member's session to expire, ≈ ``session_timeout_ms``).

Every run uses topics and a group of its own and image ids ``bench-<run>-<n>``, so rows
already in the database never absorb the work. Both functions use ``settings.kafka_bootstrap``
when ``bootstrap`` is given, else a fresh embedded broker.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamscore.bench.numbered import send_numbered
from streamscore.broker import EmbeddedBroker
from streamscore.consumers.workers import check_scale_out, worker_env
from streamscore.logs import logged_events
from streamscore.models import bundled_model
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.evaluation_events import record_kind
from streamscore.shared.kafka import assign_from_beginning, ensure_topics, flush, make_consumer, make_producer
from streamscore.shared.messages import Prediction, now_ms
from streamscore.shared.mnist import load_split

PARTITIONS = 4


@contextlib.contextmanager
def _kafka(settings: Settings, bootstrap: str | None) -> Iterator[Settings]:
    if bootstrap:
        yield settings.with_overrides(kafka_bootstrap=bootstrap)
        return
    with EmbeddedBroker() as broker:
        yield settings.with_overrides(kafka_bootstrap=broker.bootstrap)


def _run_settings(settings: Settings, backend_url: str, tag: str) -> Settings:
    return settings.with_overrides(
        images_topic=f"bench.{tag}.images", predictions_topic=f"bench.{tag}.predictions",
        models_topic=f"bench.{tag}.models", dlq_topic=f"bench.{tag}.dlq", group=f"bench-{tag}",
        backend=backend_url, partitions=PARTITIONS, metrics_port=0,
    )


def _start(settings: Settings, log_path: Path, index: int = 0) -> subprocess.Popen[bytes]:
    env = worker_env(settings, index) | {
        "STREAMSCORE_LOG_JSON": "true", "STREAMSCORE_PARTITIONS": str(PARTITIONS),
        "STREAMSCORE_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
    }
    env.pop("STREAMSCORE_FAULT_POINT", None)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "streamscore.cli", "consume"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=log_path.parent)


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _log_times(log_path: Path, name: str) -> list[float]:
    """Epoch seconds of the log lines that mark event ``name`` (streamscore.logs.EVENTS)."""
    return [stamp for stamp, _, _ in logged_events(log_path, name)]


def _owned(log_path: Path) -> set[int]:
    """Partitions a consumer owns, from its ``assigned`` and ``revoked`` events."""
    owned: set[int] = set()
    for _, name, data in logged_events(log_path, "assigned", "revoked"):
        partitions = {int(p) for p in data.get("partitions", [])}
        owned = owned | partitions if name == "assigned" else owned - partitions
    return owned


def _wait_stable(logs: Sequence[Path], processes: Sequence[subprocess.Popen[bytes]], timeout: float = 90) -> None:
    """Until every consumer owns partitions and together they own each one once (from their logs:
    the embedded broker does not list group members)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a benchmark consumer exited early; run `streamscore consume` by hand to see why")
        owned = [_owned(path) for path in logs]
        if all(owned) and sum(len(o) for o in owned) == PARTITIONS == len(set().union(*owned)):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{len(processes)} consumers did not share the {PARTITIONS} partitions in {timeout:.0f}s")


def _produce(settings: Settings, tag: str, count: int, rate: float | None = None,
             stop: threading.Event | None = None) -> int:
    split = load_split("test", settings.mnist_dir)
    producer = make_producer(settings)
    interval = 1 / rate if rate else 0.0
    started = time.monotonic()
    for n in range(count):
        if stop is not None and stop.is_set():
            break
        if interval:
            time.sleep(max(0.0, started + n * interval - time.monotonic()))
        send_numbered(producer, settings.images_topic, split, f"bench-{tag}-{n:06d}", n)
        producer.poll(0)
    flush(producer)
    return count


def _predictions(settings: Settings, until: Any, timeout: float) -> dict[str, Prediction]:
    """Read the evaluation topic from the start until ``until(seen)`` is true; first prediction per id."""
    consumer = make_consumer(settings, f"bench-reader-{uuid.uuid4().hex[:8]}")
    seen: dict[str, Prediction] = {}
    try:
        assign_from_beginning(consumer, settings.predictions_topic)
        deadline = time.monotonic() + timeout
        while not until(seen):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(seen)} predictions within {timeout:.0f}s")
            for message in consumer.consume(1000, 0.2):
                if not message.error() and record_kind(message.headers(), message.value()) is None:
                    prediction = Prediction.from_json(message.value() or b"")
                    seen.setdefault(prediction.image_id, prediction)
    finally:
        consumer.close()
    return seen


def scaleout_benchmark(settings: Settings, backend_url: str, images: int, *, bootstrap: str | None = None,
                       workers: Sequence[int] = (1, 2)) -> dict[str, Any]:
    """Images/s with 1 and 2 consumer processes (broker, producer and consumers on this machine)."""
    for count in workers:
        check_scale_out(backend_url, count)
    runs: dict[str, Any] = {}
    with _kafka(settings, bootstrap) as kafka, tempfile.TemporaryDirectory(prefix="streamscore-bench-") as scratch:
        for count in workers:
            tag = uuid.uuid4().hex[:8]
            run = _run_settings(kafka, backend_url, tag)
            ensure_topics(run)
            publish_model(run, bundled_model(2))
            logs = [Path(scratch) / f"{tag}-{i}.log" for i in range(count)]
            processes = [_start(run, log, i) for i, log in enumerate(logs)]
            try:
                _wait_stable(logs, processes)
                started_ms = now_ms()
                _produce(run, tag, images)
                predictions = _predictions(run, lambda seen: len(seen) >= images, timeout=max(120, images / 20))
            finally:
                _stop(processes)
            last = max(p.scored_at for p in predictions.values())
            first = min(p.scored_at for p in predictions.values())
            seconds = (last - started_ms) / 1000
            runs[str(count)] = {
                "workers": count, "images": images, "seconds": round(seconds, 3),
                "images_per_s": round(images / seconds, 1),
                "scoring_span_images_per_s": round(images / max(0.001, (last - first) / 1000), 1),
            }
    result: dict[str, Any] = {"backend": backend_url.split("://")[0], "partitions": PARTITIONS, "runs": runs}
    if "1" in runs and "2" in runs:
        result["speedup_2_vs_1"] = round(runs["2"]["images_per_s"] / runs["1"]["images_per_s"], 2)
    return result


def recovery_benchmark(settings: Settings, backend_url: str, *, bootstrap: str | None = None,
                       rate: float = 200, warmup: int = 300) -> dict[str, Any]:
    """SIGKILL a consumer under a steady stream, restart it at once: seconds to its first new prediction."""
    with _kafka(settings, bootstrap) as kafka, tempfile.TemporaryDirectory(prefix="streamscore-bench-") as scratch:
        tag = uuid.uuid4().hex[:8]
        run = _run_settings(kafka, backend_url, tag)
        ensure_topics(run)
        publish_model(run, bundled_model(2))
        stop = threading.Event()
        producer = threading.Thread(target=_produce, args=(run, tag, 10**7, rate, stop), daemon=True)
        first_log, second_log = Path(scratch) / "first.log", Path(scratch) / "second.log"
        processes = [_start(run, first_log)]
        try:
            producer.start()
            _predictions(run, lambda seen: len(seen) >= warmup, timeout=120)
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait()
            killed_ms = now_ms()
            processes.append(_start(run, second_log))
            restarted_ms = now_ms()
            fresh = _predictions(run, lambda seen: any(p.scored_at >= restarted_ms for p in seen.values()),
                                 timeout=120)
        finally:
            stop.set()
            _stop(processes)
            producer.join(10)
        first_new = min(p.scored_at for p in fresh.values() if p.scored_at >= restarted_ms)
        subscribed = _log_times(second_log, "subscribed")
        assigned = _log_times(second_log, "assigned")
    result: dict[str, Any] = {
        "backend": backend_url.split("://")[0],
        "session_timeout_ms": run.session_timeout_ms,
        "restart_to_first_prediction_s": round((first_new - restarted_ms) / 1000, 3),
        "kill_to_first_prediction_s": round((first_new - killed_ms) / 1000, 3),
    }
    if subscribed and assigned:
        result["startup_s"] = round(subscribed[0] - restarted_ms / 1000, 3)
        result["group_join_s"] = round(assigned[0] - subscribed[0], 3)
    return result
