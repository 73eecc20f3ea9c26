"""Fault drills on the embedded broker and DuckDB, with real `streamscore consume` processes.

Every drill ends with the same invariant (tests/support/drill.py): each good image id
is predicted exactly once per model version in the database and is on the evaluation
topic; the DLQ holds exactly the malformed messages.
DuckDB has one writer per file, so the drills with two consumers run on PostgreSQL
(test_drills_postgres.py); here the second process is a standby waiting for the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from streamscore.backends.url import BackendURL
from streamscore.shared.config import Settings
from streamscore.shared.mnist import MnistSplit
from support.databases import duckdb_rows
from support.drill import Drill, drill, drill_settings, wait_until
from support.malformed import HOSTILE_KEY, MALFORMED
from support.offsets import reset_group

pytestmark = pytest.mark.slow


@pytest.fixture
def duck(make_settings: Callable[..., Settings], tmp_path: Path, test_split: MnistSplit) -> Iterator[Drill]:
    settings = drill_settings(make_settings)
    with drill(settings, settings.backend_url, tmp_path, test_split) as running:
        yield running


def finish(d: Drill) -> None:
    """Wait for every id and dead letter, stop the consumers gracefully, check the invariant."""
    d.wait_predicted()
    d.wait_dead_letters()
    for consumer in d.consumers:
        consumer.stop()
    d.check_invariant(*duckdb_rows(d.backend_url))


def test_sigkill_mid_batch_three_times(duck: Drill) -> None:
    # a 10 s stream: each kill must land while images still arrive (a consumer that has caught up
    # before the third round would have nothing left to make progress on)
    producer = duck.produce_in_background(0, 1500, rate=150)
    duck.send_malformed()
    for round_ in range(3):
        consumer = duck.start_consumer()
        consumer.wait_event("assigned")
        seen = duck.predictions.count()
        wait_until(lambda seen=seen: duck.predictions.count() >= seen + 100, 30,  # type: ignore[misc]
                   lambda round_=round_, consumer=consumer: f"progress before kill {round_ + 1} "
                   f"(producer running: {producer.is_alive()}):\n{consumer.tail()}")
        consumer.kill()
    producer.join(30)
    duck.start_consumer()
    finish(duck)


def test_crash_after_db_commit_before_kafka_commit(duck: Drill) -> None:
    duck.produce(0, 600)
    duck.send_malformed()
    crashing = duck.start_consumer(STREAMSCORE_FAULT_POINT="after-db-commit")
    assert crashing.process.wait(60) == 137, crashing.tail()
    assert crashing.events("fault-point", point="after-db-commit")
    # the crashed batch is in the database, but neither its predictions nor its Kafka commit went out
    duck.start_consumer()
    finish(duck)


def test_database_locked_by_another_process(duck: Drill) -> None:
    """DuckDB outage: another process holds the file lock; the consumer waits, backs off, then catches up."""
    first = duck.start_consumer()
    duck.produce(0, 300)
    duck.wait_predicted()
    first.stop()
    path = BackendURL.parse(duck.backend_url).path.removeprefix("/")
    holder = duckdb.connect(path)  # holds the lock of the file for as long as it is open
    try:
        duck.produce(300, 800)
        duck.send_malformed()
        waiting = duck.start_consumer()
        waiting.wait_event("retry", 30, count=4)  # four retries while the file is locked
        assert waiting.process.poll() is None, waiting.tail()
        assert not duck.dlq.count(), "an outage must send nothing to the DLQ"
    finally:
        holder.close()
    finish(duck)


def test_replay_from_offset_zero_adds_no_rows(duck: Drill) -> None:
    duck.produce(0, 500)
    duck.send_malformed()
    consumer = duck.start_consumer()
    duck.wait_predicted()
    duck.wait_dead_letters()
    consumer.stop()
    rows_before, images_before = duckdb_rows(duck.backend_url)
    sent = duck.predictions.count()
    reset_group(duck.settings, duck.settings.partitions)
    duck.start_consumer()
    # everything is consumed again: every prediction is re-sent (at-least-once) ...
    wait_until(lambda: duck.predictions.count() >= sent + len(duck.produced_ids), 40,
               lambda: f"{duck.predictions.count() - sent} of {len(duck.produced_ids)} predictions re-sent")
    finish(duck)
    # ... and the database gains no rows
    rows_after, images_after = duckdb_rows(duck.backend_url)
    assert sorted(rows_after) == sorted(rows_before)
    assert images_after == images_before


def test_data_error_dead_letters_only_the_refused_row(duck: Drill) -> None:
    """A CHECK constraint refuses one image id: bisecting commits the rest of its batch."""
    refused = "t10k-00123"
    path = BackendURL.parse(duck.backend_url).path.removeprefix("/")
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE images (image_id VARCHAR PRIMARY KEY CHECK (image_id <> 't10k-00123'), "
                    "pixels UTINYINT[784] NOT NULL, label TINYINT, produced_at BIGINT, src_topic VARCHAR, "
                    "src_partition INTEGER, src_offset BIGINT, batch_id VARCHAR, "
                    "ingested_at TIMESTAMP DEFAULT current_timestamp)")
    duck.produce(0, 400)
    consumer = duck.start_consumer()
    duck.produced_ids.discard(refused)
    duck.wait_predicted()
    wait_until(lambda: refused in duck.dlq.ids(), 20, "the refused row in the DLQ")
    consumer.stop()
    ((key, headers, value),) = duck.dlq.snapshot()
    assert key == refused and value is not None and len(value) == 784
    assert headers["error.reason"] == b"db-rejected" and headers["error.stage"] == b"database"
    assert b"ConstraintException" in headers["error.message"] and b"CHECK" in headers["error.message"]
    duck.malformed_offsets = {(int(headers["source.partition"]), int(headers["source.offset"])): "db-rejected"}
    duck.check_invariant(*duckdb_rows(duck.backend_url))


def test_malformed_and_hostile_input(duck: Drill) -> None:
    duck.produce(0, 200)
    duck.send_malformed()
    duck.produce(200, 300)
    duck.start_consumer()
    finish(duck)
    reasons = {key: h["error.reason"].decode() for key, h, _ in duck.dlq.snapshot()}
    expected = {(None if k is None else k.decode("utf-8", "replace")): r for k, _, _, r in MALFORMED if r}
    assert reasons == expected
    path = BackendURL.parse(duck.backend_url).path.removeprefix("/")
    with duckdb.connect(path, read_only=True) as con:
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        stored = con.execute("SELECT count(*) FROM images WHERE image_id = ?", [HOSTILE_KEY]).fetchone()
    assert {"images", "predictions", "consumer_offsets", "models"} <= tables
    assert stored == (1,)
