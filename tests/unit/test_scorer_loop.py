"""The scoring loop without a broker: fake Kafka clients (our seam) and a real DuckDB file.

Each test plays one situation of the loop (bisection, revoke-trim, database and Kafka
outages, model switch, shutdown, crash after the database commit) and checks the
delivery guarantees: every good image stored and predicted once, every prediction
delivered, Kafka offsets committed only after both.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from streamscore.backends.base import ImageBatch
from streamscore.errors import BackendError, ConfigError, StreamscoreError
from streamscore.models import bundled_model
from streamscore.shared.messages import headers_to_dict
from support.fake_kafka import FakeCluster
from support.loop_harness import FlakyDuckDB, LoopRun, loop_settings

IDS = [f"t10k-{i:05d}" for i in range(40)]


def start(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB, **overrides: object) -> LoopRun:
    return LoopRun(loop_settings(tmp_path, **overrides), cluster, backend)


def committed(run: LoopRun) -> dict[int, int]:
    return {p: o for (g, t, p), o in run.cluster.committed.items() if g == run.settings.group}


def ends(run: LoopRun) -> dict[int, int]:
    return {p: len(log) for p, log in enumerate(run.cluster.topics[run.settings.images_topic]) if log}


def test_every_image_is_stored_predicted_and_committed_once(tmp_path: Path, cluster: FakeCluster,
                                                            backend: FlakyDuckDB) -> None:
    run = start(tmp_path, cluster, backend)
    cluster.send_images("images", IDS)
    cluster.append("images", 0, b"bad-length", bytes(783), [])
    run.wait(lambda: len(run.predicted_ids()) == len(IDS) and committed(run) == ends(run), "all predictions")
    assert run.finish() is None
    assert sorted(run.predicted_ids()) == IDS
    (dead,) = cluster.messages("dlq")
    assert headers_to_dict(dead.headers())["error.reason"] == b"bad-length"
    rows, images = backend.rows()
    assert sorted(rows) == [(i, 1) for i in IDS] and images == set(IDS)
    assert run.scorer.stats.scored == len(IDS) and run.scorer.stats.dead_lettered == 1


def test_a_refused_row_is_isolated_by_bisection(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    backend.refused = {IDS[7]}
    run = start(tmp_path, cluster, backend)
    cluster.send_images("images", IDS)
    run.wait(lambda: len(run.predicted_ids()) == len(IDS) - 1 and committed(run) == ends(run), "the good rows")
    assert run.finish() is None
    assert [(m.key(), headers_to_dict(m.headers())["error.reason"]) for m in cluster.messages("dlq")] == \
        [(IDS[7].encode(), b"db-rejected")]
    assert set(backend.rows()[1]) == set(IDS) - {IDS[7]}


def test_a_database_outage_pauses_and_keeps_the_batch(tmp_path: Path, cluster: FakeCluster,
                                                      backend: FlakyDuckDB) -> None:
    run = start(tmp_path, cluster, backend)
    cluster.send_images("images", IDS[:10])
    run.wait(lambda: len(run.predicted_ids()) == 10, "the first images")
    backend.failing_writes = 3
    cluster.send_images("images", IDS[10:])
    run.wait(lambda: len(run.predicted_ids()) == len(IDS) and committed(run) == ends(run), "the rest")
    assert run.finish() is None
    assert run.scorer.stats.retries == 3 and not run.scorer.stats.paused
    assert not cluster.messages("dlq"), "an outage sends nothing to the DLQ"
    assert sorted(backend.rows()[0]) == [(i, 1) for i in IDS]


def test_a_retriable_error_that_keeps_coming_back_stops_the_loop(tmp_path: Path, cluster: FakeCluster,
                                                                 backend: FlakyDuckDB) -> None:
    backend.failing_writes = 1_000
    run = start(tmp_path, cluster, backend, max_batch_retries=4)
    cluster.send_images("images", IDS[:5])
    run.thread.join(20)
    error = run.finish()
    assert isinstance(error, BackendError) and error.reason == "retries-exhausted" and not error.retriable
    assert "4 times" in error.message and "transient failure (test)" in error.message
    assert run.scorer.stats.fatal == error.message
    assert committed(run) == {} and run.predicted_ids() == []


def test_an_unreachable_database_is_waited_out_however_often_it_fails(tmp_path: Path, cluster: FakeCluster,
                                                                      backend: FlakyDuckDB) -> None:
    run = start(tmp_path, cluster, backend, max_batch_retries=2)
    cluster.send_images("images", IDS[:5])
    run.wait(lambda: len(run.predicted_ids()) == 5, "the first images")
    backend.away = True
    cluster.send_images("images", IDS[5:10])
    run.wait(lambda: run.scorer.stats.retries >= 6, "six retries while the database is away")
    backend.away = False
    run.wait(lambda: len(run.predicted_ids()) == 10 and committed(run) == ends(run), "the images after the outage")
    assert run.finish() is None


def test_rows_of_a_partition_revoked_during_an_outage_are_left_out(tmp_path: Path, cluster: FakeCluster,
                                                                   backend: FlakyDuckDB) -> None:
    def revoke_partition_0_once(batch: ImageBatch) -> None:
        if backend.writes == 1:
            backend.failing_writes = 1
            cluster.consumers[-1].revoke_next = [("images", 0)]

    backend.before_write = revoke_partition_0_once
    run = start(tmp_path, cluster, backend, batch_size=100)
    cluster.send_images("images", IDS)
    in_p1 = {(m.key() or b"").decode() for m in cluster.topics["images"][1]}
    run.wait(lambda: set(run.predicted_ids()) == in_p1 and 1 in committed(run), "partition 1's images")
    assert run.finish() is None
    assert 0 not in committed(run), "a revoked partition's offsets belong to its new owner"
    assert backend.rows()[1] == in_p1


def test_a_kafka_outage_holds_the_batch_until_every_prediction_is_delivered(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    def cut_kafka_once(batch: ImageBatch) -> None:
        if backend.writes == 1:
            cluster.down()

    backend.before_write = cut_kafka_once
    run = start(tmp_path, cluster, backend, batch_size=100)
    cluster.send_images("images", IDS)
    run.wait(lambda: not run.scorer.health()[0], "/healthz to report Kafka")
    _, problems = run.scorer.health()
    assert "Kafka at fake:9092 unreachable" in problems[0]
    run.wait(lambda: run.scorer.stats.paused, "the partitions to be paused")
    assert committed(run) == {} and run.predicted_ids() == []
    cluster.up()
    run.wait(lambda: committed(run) == ends(run), "the Kafka commit after the outage")
    assert run.finish() is None
    assert sorted(run.predicted_ids()) == IDS, "each prediction delivered once, none dropped"
    assert run.scorer.health() == (True, [])
    assert sorted(backend.rows()[0]) == [(i, 1) for i in IDS]


def test_failed_deliveries_are_sent_again(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    cluster.failing_deliveries = 3
    run = start(tmp_path, cluster, backend)
    cluster.send_images("images", IDS)
    run.wait(lambda: committed(run) == ends(run), "the Kafka commit")
    assert run.finish() is None
    assert sorted(run.predicted_ids()) == IDS


def test_a_new_model_is_switched_to_between_two_batches(tmp_path: Path, cluster: FakeCluster,
                                                        backend: FlakyDuckDB) -> None:
    run = start(tmp_path, cluster, backend)
    cluster.send_images("images", IDS[:20])
    run.wait(lambda: len(run.predicted_ids()) == 20, "v1 predictions")
    cluster.publish_model("models", bundled_model(2))
    run.wait(lambda: run.scorer.stats.model_version == 2, "the switch to v2")
    cluster.send_images("images", IDS[20:])
    run.wait(lambda: len(run.predicted_ids()) == len(IDS), "v2 predictions")
    assert run.finish() is None
    versions = dict(backend.rows()[0])
    assert {versions[i] for i in IDS[:20]} == {1} and {versions[i] for i in IDS[20:]} == {2}
    assert run.scorer.stats.per_version == {1: 20, 2: 20}


def test_stopping_during_an_outage_commits_nothing(tmp_path: Path, cluster: FakeCluster,
                                                   backend: FlakyDuckDB) -> None:
    run = start(tmp_path, cluster, backend)
    run.wait(lambda: run.scorer.ready.is_set(), "the assignment")
    backend.away = True
    cluster.send_images("images", IDS[:5])
    run.wait(lambda: run.scorer.stats.retries >= 2, "retries")
    assert run.finish() is None
    assert committed(run) == {} and run.predicted_ids() == []
    assert all(c.closed for c in cluster.consumers)


class Crash(Exception):
    """Stands for the process dying at a fault point."""


def crash_after_db_commit(point: str) -> None:
    if point == "after-db-commit":
        raise Crash(point)


def test_a_crash_after_the_db_commit_is_replayed_without_new_rows(tmp_path: Path, cluster: FakeCluster,
                                                                  backend: FlakyDuckDB) -> None:
    settings = loop_settings(tmp_path, batch_size=100)
    crashing = LoopRun(settings, cluster, backend, fault=crash_after_db_commit)
    cluster.send_images("images", IDS)
    crashing.thread.join(20)
    assert isinstance(crashing.finish(), Crash)
    rows_after_crash = sorted(backend.rows()[0])
    assert rows_after_crash and committed(crashing) == {} and crashing.predicted_ids() == []
    again = LoopRun(settings, cluster, backend)
    again.wait(lambda: committed(again) == ends(again), "the replay")
    assert again.finish() is None
    assert sorted(again.predicted_ids()) == IDS
    assert sorted(backend.rows()[0]) == [(i, 1) for i in IDS]


@pytest.mark.parametrize("permanent", [
    BackendError("permission denied for schema streamscore (test)", reason="permission"),
    ConfigError("folder /nowhere for the DuckDB file does not exist (test)"),
])
def test_a_permanent_error_at_start_up_stops_at_once(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB,
                                                     permanent: StreamscoreError) -> None:
    def refuse(*_: object) -> None:
        raise permanent

    backend.init_schema = refuse  # type: ignore[method-assign]
    run = start(tmp_path, cluster, backend)
    run.thread.join(10)
    assert run.finish() is permanent
    assert run.scorer.stats.retries == 0 and run.scorer.stats.fatal == permanent.message
    assert cluster.consumers == [], "a consumer that cannot work never joins the group"


def test_an_idle_consumer_that_lost_its_partitions_in_an_outage_gets_them_back(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    run = start(tmp_path, cluster, backend)
    run.wait(lambda: run.scorer.ready.is_set(), "the assignment")
    consumer = cluster.consumers[-1]
    cluster.down()
    run.wait(lambda: run.scorer.kafka.unreachable, "Kafka to be seen unreachable")
    consumer.positions.clear()  # what librdkafka does on "partition count changed from 4 to 0"
    cluster.up()
    run.wait(lambda: consumer.closed and cluster.consumers[-1].subscription == ["images"], "a new consumer")
    cluster.send_images("images", IDS[:10])
    run.wait(lambda: len(run.predicted_ids()) == 10, "images sent after the outage")
    assert run.finish() is None


def test_a_producer_that_never_delivers_while_kafka_answers_is_replaced(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    cluster.stuck_producers = True  # as after a broker restart that lost the producer's idempotence state
    run = start(tmp_path, cluster, backend)
    run.wait(lambda: len(cluster.producers) == 1, "the first producer")
    cluster.stuck_producers = False
    cluster.send_images("images", IDS)
    run.wait(lambda: committed(run) == ends(run), "the Kafka commit")
    assert run.finish() is None
    assert len(cluster.producers) >= 2 and sorted(run.predicted_ids()) == IDS


def test_a_reused_id_with_other_content_is_dead_lettered_never_predicted(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    """issue 11: the database keeps the first content of an id, and the evaluation topic never shows another."""
    run = start(tmp_path, cluster, backend)
    cluster.send_images("images", IDS[:10], pixels=bytes(784), label=3)
    run.wait(lambda: len(run.predicted_ids()) == 10, "the first images")
    cluster.send_images("images", [IDS[0]], pixels=bytes([255]) * 784, label=3)  # other pixels
    cluster.send_images("images", [IDS[1]], pixels=bytes(784), label=5)  # other label
    cluster.send_images("images", [IDS[2]], pixels=bytes(784), label=3)  # a replay: absorbed, predicted again
    cluster.send_images("images", ["new-1"], pixels=bytes(784), label=1)
    cluster.send_images("images", ["new-1"], pixels=bytes([7]) * 784, label=1)  # reused within the stream
    run.wait(lambda: len(cluster.messages("dlq")) == 3 and "new-1" in run.predicted_ids(), "the conflicts")
    assert run.finish() is None
    reasons = sorted((m.key(), headers_to_dict(m.headers())["error.reason"]) for m in cluster.messages("dlq"))
    assert reasons == sorted((key, b"id-conflict") for key in (IDS[0].encode(), IDS[1].encode(), b"new-1"))
    predictions = [json.loads(m.value()) for m in cluster.messages(run.settings.predictions_topic)]
    assert sorted(p["image_id"] for p in predictions) == sorted([*IDS[:10], IDS[2], "new-1"])
    assert {p["label"] for p in predictions if p["image_id"] in IDS[:10]} == {3}
    with duckdb.connect(str(tmp_path / "loop.duckdb")) as con:
        stored = dict(con.execute("SELECT image_id, label FROM images").fetchall())
        first_new = con.execute("SELECT pixels FROM images WHERE image_id = 'new-1'").fetchall()
    assert stored == {**{i: 3 for i in IDS[:10]}, "new-1": 1}
    assert bytes(first_new[0][0]) == bytes(784)
    assert run.scorer.stats.dead_lettered == 3
