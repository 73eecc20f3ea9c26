"""`streamscore bench`: memory and the serving gap over 100 hot swaps in a row (issue 12 part 5).

A Scorer runs in this process at full rate: a feeder process keeps about
:data:`BACKLOG_BATCHES` batches of images queued ahead of it (unique ids, so nothing is absorbed
as a replay), so it never waits for images and the broker's memory does not grow with the run.
New versions are serialized and published by a third process, so none of the bench's own work
falls into the consumer's intervals.
After a warm-up, a new version of the model is published whenever the one serving has scored
:data:`BATCHES_PER_SWAP` batches, :data:`SWAPS` times; the watcher installs, canary-checks and
switches to each between two batches, as in production.

Figures (bench.json and the table):

* ``rss_mb_before`` / ``rss_mb_after_100_swaps``: this process's resident memory (the consumer
  and the bench; ``gc.collect()`` first) after the warm-up and after the last swap, and every
  :data:`RSS_SAMPLE_EVERY` swaps in between (``swaps.rss_mb_every_10_swaps``: a leak climbs, a
  bound flattens). ``swaps.database_mb_*``: what the database holds, where it can be read — DuckDB's
  allocations inside this process (its buffer pool keeps written pages, model rows included, up to
  its ``memory_limit``), or the PostgreSQL session's server process when the server runs here.
* ``swap_gap_ratio``: the largest interval around a swap — between two consecutive batches where
  the second is the first of a new version (the switch) and, when versions are installed ahead
  (``installed_ahead``), the interval before that one, during which the new version was installed
  and canary-checked on a second session (consumers/install_ahead.py) — divided by the median of
  the other intervals. Batch stamps are the
  loop's ``on_batch`` times (after the commit, before the next batch), so an interval is one batch's
  whole cycle.
* ``swaps.cached_models``: what the backend holds after the last swap (Backend.cached_models:
  in the process, and in the database session where the engine caches there).
"""

from __future__ import annotations

import functools
import gc
import itertools
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamscore.backends import open_configured_backend
from streamscore.backends.base import Backend, ScoredBatch
from streamscore.bench.numbered import send_numbered
from streamscore.bench.shadow import shadow_overhead
from streamscore.consumers.scorer import Scorer
from streamscore.errors import BenchError
from streamscore.models import bundled_model
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics, flush, make_producer
from streamscore.shared.mnist import MnistSplit, load_split
from streamscore.shared.procfs import rss_mb

#: hot swaps in a row (the issue's figure)
SWAPS = 100
#: batches each version serves before the next one is published
BATCHES_PER_SWAP = 2
#: batches scored with the first version before the "before" figures are taken (caches, plans)
WARMUP_BATCHES = 5
#: batches of images the feeder keeps queued ahead of the consumer
BACKLOG_BATCHES = 4
#: the RSS is also sampled after every this many swaps (bounded memory flattens out; a leak climbs)
RSS_SAMPLE_EVERY = 10
#: the longest one swap (publish → the new version's batches) may take before the bench gives up
SWAP_LIMIT_S = 60.0


@dataclass
class BatchLog:
    """What the loop's on_batch saw: (monotonic time, images, version) per served batch."""

    backend: Backend
    #: images scored, shared with the feeder process (multiprocessing.Value)
    scored: Any
    stamps: list[tuple[float, int, int]] = field(default_factory=list)
    cached: list[tuple[str, int]] | None = None
    database_mb: float | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_batch(self, batch: ScoredBatch) -> None:
        if not getattr(batch, "served", True):  # shadow results (model roles) are not served batches
            return
        cached = self.backend.cached_models()  # the scorer's thread: its own database session
        database_mb = self.backend.memory_mb()
        with self.changed:
            self.stamps.append((time.monotonic(), len(batch.image_ids), batch.model.version))
            self.scored.value += len(batch.image_ids)
            self.cached = cached
            self.database_mb = database_mb
            self.changed.notify_all()

    def served_by(self, version: int, batches: int) -> bool:
        """Whether ``version`` has scored at least ``batches`` batches."""
        with self.changed:
            return sum(1 for _, _, v in self.stamps if v == version) >= batches

    def wait(self, predicate: Callable[[], bool], what: str, limit: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + limit
        with self.changed:
            while not predicate():
                if time.monotonic() > deadline or not alive():
                    raise BenchError(f"swap benchmark: no {what} within {limit:.0f}s (scorer alive: {alive()})")
                self.changed.wait(0.1)


def feed(settings: Settings, scored: Any, stop: Any) -> None:
    """Keep about BACKLOG_BATCHES batches of images queued ahead of the consumer, until ``stop``.

    Runs in a process of its own (as a real producer does), so that it does not compete with the
    consumer for this interpreter's lock; ``scored`` is the shared count of images scored.
    """
    split = load_split("test", settings.mnist_dir)
    producer = make_producer(settings)
    backlog = BACKLOG_BATCHES * settings.batch_size
    sent = 0
    try:
        while not stop.is_set():
            if sent - scored.value >= backlog:
                time.sleep(0.005)
                continue
            for _ in range(settings.batch_size):
                send_numbered(producer, settings.images_topic, split, f"swap-{sent:07d}", sent)
                sent += 1
            producer.poll(0)
    finally:
        producer.flush(10)


def gap_figures(stamps: list[tuple[float, int, int]], installed_ahead: bool = True) -> dict[str, float | None]:
    """Swap gap: the largest interval around a swap ÷ the median other interval (and the largest other
    interval: a pause that is not the swap's, e.g. a checkpoint). Around a swap is where its work
    runs: the interval ending at a new version's first batch and, when versions are installed ahead
    on a second session, the one before it too (with installs on the loop that one holds none of it)."""
    intervals = [after - before for (before, _, _), (after, _, _) in itertools.pairwise(stamps)]
    switches = [i for i, ((_, _, old), (_, _, new)) in enumerate(itertools.pairwise(stamps)) if new != old]
    around = set(switches) | ({i - 1 for i in switches if i > 0} if installed_ahead else set())
    swaps = [intervals[i] for i in switches]
    steady = [seconds for i, seconds in enumerate(intervals) if i not in around]
    if not swaps or not steady:
        return {"swap_gap_ratio": None, "swap_interval_ms_max": None, "batch_interval_ms_median": None,
                "batch_interval_ms_max": None}
    median = statistics.median(steady)
    largest = max(intervals[i] for i in around)
    return {
        "swap_gap_ratio": largest / median if median > 0 else None,
        "swap_interval_ms_max": largest * 1000, "swap_interval_ms_median": statistics.median(swaps) * 1000,
        "batch_interval_ms_median": median * 1000, "batch_interval_ms_max": max(steady) * 1000,
    }


def measured_memory() -> float | None:
    gc.collect()
    return rss_mb()


def publish_versions(settings: Settings, versions: Any) -> None:
    """Publish each version number that arrives on ``versions`` (None ends), in a process of its own:
    serializing an artifact (≈ 10 ms of numpy and zlib) must not fall into the consumer's intervals."""
    producer = make_producer(settings)
    base = bundled_model(2)
    try:
        while (version := versions.get()) is not None:
            publish_model(settings, base.with_version(version), producer=producer)
    finally:
        flush(producer)


def swap_benchmark(settings: Settings, swaps: int = SWAPS) -> dict[str, Any]:
    """Run the scorer through ``swaps`` hot swaps at full rate (see the module doc); the figures."""
    ensure_topics(settings)
    backend = open_configured_backend(settings)
    processes = multiprocessing.get_context("spawn")
    log, stop, feeding = BatchLog(backend, processes.Value("q", 0)), threading.Event(), processes.Event()
    publish_model(settings, bundled_model(2).with_version(1))
    scorer = Scorer(settings, backend, stop=stop, on_batch=log.on_batch)
    thread = threading.Thread(target=scorer.run, daemon=True, name="swap-scorer")
    versions = processes.Queue()
    helpers = [processes.Process(target=feed, args=(settings, log.scored, feeding), daemon=True, name="swap-feeder"),
               processes.Process(target=publish_versions, args=(settings, versions), daemon=True, name="swap-models")]
    for helper in helpers:
        helper.start()
    thread.start()
    try:
        log.wait(lambda: len(log.stamps) >= WARMUP_BATCHES, "warm-up batches", SWAP_LIMIT_S, thread.is_alive)
        before, database_before = measured_memory(), log.database_mb
        started, trend = time.monotonic(), [before]
        for version in range(2, swaps + 2):
            versions.put(version)
            log.wait(functools.partial(log.served_by, version, BATCHES_PER_SWAP),
                     f"{BATCHES_PER_SWAP} batches of v{version}", SWAP_LIMIT_S, thread.is_alive)
            if (version - 1) % RSS_SAMPLE_EVERY == 0:
                trend.append(rss_mb())
        elapsed = time.monotonic() - started
        after, database_after = measured_memory(), log.database_mb
        ahead = scorer.watcher.ahead.enabled  # where a swap's work runs: gap_figures' window
    finally:
        versions.put(None)
        feeding.set()
        stop.set()
        thread.join(30)
        for helper in helpers:
            helper.join(30)
    return {
        "rss_mb_before": before, "rss_mb_after_100_swaps": after, "installed_ahead": ahead,
        **gap_figures(log.stamps, ahead),
        f"rss_mb_every_{RSS_SAMPLE_EVERY}_swaps": trend, "swaps": swaps, "seconds": elapsed,
        "batches": len(log.stamps), "images": log.scored.value,
        "cached_models": [f"{name}:v{version}" for name, version in log.cached or []],
        "database_mb_before": database_before, "database_mb_after": database_after,
    }


def swap_figures(fresh: Callable[[str], Settings], split: MnistSplit, images: int,
                 swaps: int = SWAPS) -> dict[str, Any]:
    """bench.json's figures of issue 12 part 5: four top-level keys, the details under ``swaps``
    and ``shadow``; ``fresh(tag)`` gives the settings of a run (its own topics and database)."""
    detail = swap_benchmark(fresh("swaps"), swaps)
    shadow = shadow_overhead(fresh, split, images)
    return {
        "rss_mb_before": detail.pop("rss_mb_before"), "rss_mb_after_100_swaps": detail.pop("rss_mb_after_100_swaps"),
        "swap_gap_ratio": detail.pop("swap_gap_ratio"), "shadow_overhead": shadow.pop("shadow_overhead"),
        "swaps": detail, "shadow": shadow,
    }


def swap_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The bench table's rows of these figures (none when they were not measured)."""
    if "swaps" not in results:
        return []

    def mb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} MB"

    detail, gap, overhead = results["swaps"], results.get("swap_gap_ratio"), results.get("shadow_overhead")
    rows = [(f"RSS before / after {detail['swaps']} swaps (this process)",
             f"{mb(results.get('rss_mb_before'))} / {mb(results.get('rss_mb_after_100_swaps'))}")]
    if detail.get("database_mb_before") is not None:
        rows.append(("database memory before / after (DuckDB: its buffers, in this process; PostgreSQL: the session)",
                     f"{mb(detail['database_mb_before'])} / {mb(detail['database_mb_after'])}"))
    where = "the switch's or, installed ahead, the one before it" if detail.get("installed_ahead", True) \
        else "the switch's: installed on the loop"
    rows.append((f"swap gap (largest interval around a swap, {where}, ÷ median interval; target ≤ 2×)",
                 "n/a" if gap is None else f"{gap:.2f}× ({detail['swap_interval_ms_max']:,.0f} ms / "
                 f"{detail['batch_interval_ms_median']:,.0f} ms; largest interval without a swap: "
                 f"{detail.get('batch_interval_ms_max') or 0:,.0f} ms)"))
    rows.append(("shadow overhead (images/s with one shadow ÷ without; target ≥ 0.6×)",
                 f"{overhead:.2f}×" if overhead is not None else f"n/a: {results['shadow'].get('reason', '')}"))
    return rows
