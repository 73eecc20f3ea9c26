"""Model lifecycle in the scoring loop (issue 12) on fake Kafka clients and a real DuckDB file:
shadow, promote and rollback mid-stream, an ensemble, and a restart that resumes the state.

Lifecycle commands go through the real publisher code (streamscore.producers.lifecycle) with the
fakes' factories; batches are checked in the database, where every row names its batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np

from streamscore.backends.base import ImageBatch
from streamscore.model.lifecycle import Lifecycle
from streamscore.models import bundled_model
from streamscore.producers.lifecycle import publish_with_role, run_command
from streamscore.shared.config import Settings
from streamscore.shared.mnist import load_split
from support.fake_kafka import FakeCluster
from support.lifecycle import fake_clients, predictions, send_mnist
from support.loop_harness import FlakyDuckDB, LoopRun, loop_settings

ROWS = 96


def stored(backend: FlakyDuckDB) -> list[tuple[str, int, str, str]]:
    """(image_id, version, role, batch_id) of every stored prediction."""
    with duckdb.connect(backend.path) as con:
        return [(str(i), int(v), str(r), str(b)) for i, v, r, b in con.execute(
            "SELECT image_id, model_version, role, batch_id FROM predictions").fetchall()]


def begin(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB, *roles: str) -> tuple[Settings, LoopRun]:
    settings = loop_settings(tmp_path, batch_size=8)
    for topic in ("models", "images", "predictions", "dlq"):
        cluster.create_topic(topic, 2 if topic == "images" else 1)
    for version, role in enumerate(roles, start=1):
        publish_with_role(settings, bundled_model(min(version, 2)).with_version(version), role,
                          clients=fake_clients(cluster))
    return settings, LoopRun(settings, cluster, backend)


def test_a_shadow_scores_every_image_and_never_serves(tmp_path: Path, cluster: FakeCluster,
                                                      backend: FlakyDuckDB) -> None:
    _, run = begin(tmp_path, cluster, backend, "champion", "shadow")
    ids = send_mnist(cluster, range(ROWS))
    run.wait(lambda: len(cluster.messages("predictions")) == 2 * ROWS, "served and shadow predictions")
    assert run.finish() is None
    by_role: dict[str, list[str]] = {}
    for p in predictions(cluster):
        by_role.setdefault(f"{p.role}:v{p.model_version}", []).append(p.image_id)
    assert {k: sorted(v) for k, v in by_role.items()} == {"champion:v1": ids, "shadow:v2": ids}
    assert run.scorer.stats.scored == ROWS  # served images; shadow rows are not counted as served


def test_promote_then_rollback_mid_stream(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    """Each batch is scored by the versions in force when it started; nothing lost or duplicated."""
    settings, run = begin(tmp_path, cluster, backend, "champion", "shadow")
    writes: list[int] = []

    def command_mid_stream(batch: ImageBatch) -> None:
        writes.append(len(batch))
        if len(writes) == 3:
            run_command(settings, "mlp", lambda s: s.promote(2), fake_clients(cluster))
        if len(writes) == 7:
            run_command(settings, "mlp", lambda s: s.rollback("test"), fake_clients(cluster))

    backend.before_write = command_mid_stream
    ids = send_mnist(cluster, range(ROWS))
    run.wait(lambda: sorted({p.image_id for p in predictions(cluster) if p.role == "champion"}) == ids,
             "a served prediction for every image")
    assert run.finish() is None
    rows = stored(backend)
    served = [(i, v) for i, v, r, _ in rows if r == "champion"]
    assert sorted(i for i, _ in served) == ids  # exactly one served row per image
    per_batch: dict[str, set[tuple[int, str]]] = {}
    for _, version, role, batch_id in rows:
        per_batch.setdefault(batch_id, set()).add((version, role))
    sets = {frozenset(s) for s in per_batch.values()}
    # every batch saw one whole serving set: v1 + shadow v2, then v2 alone, then v1 alone again
    assert sets <= {frozenset({(1, "champion"), (2, "shadow")}), frozenset({(2, "champion")}),
                    frozenset({(1, "champion")})}
    order = [p.model_version for p in predictions(cluster) if p.role == "champion"]
    assert order[0] == 1 and 2 in order and order[-1] == 1
    assert order.index(2) < len(order) - 1 - order[::-1].index(2) + 1  # v2 served between the two v1 phases
    served_counts = [p.image_id for p in predictions(cluster) if p.role == "champion"]
    assert len(served_counts) == len(set(served_counts)) == ROWS


def test_an_ensemble_serves_the_mean_of_its_members(tmp_path: Path, cluster: FakeCluster,
                                                    backend: FlakyDuckDB) -> None:
    _, run = begin(tmp_path, cluster, backend, "champion", "ensemble")
    send_mnist(cluster, range(40))
    run.wait(lambda: len(cluster.messages("predictions")) == 40, "served predictions")
    assert run.finish() is None
    split = load_split("test")
    expected = (bundled_model(1).forward(split.images[:40]) + bundled_model(2).forward(split.images[:40])) / 2
    for p in predictions(cluster):
        assert (p.role, p.model_version, p.members) == ("ensemble", 2, (1, 2))
        row = int(p.image_id.split("-")[1])
        np.testing.assert_allclose(p.probabilities, expected[row], atol=1e-4)
    roles = sorted({(v, r) for _, v, r, _ in stored(backend)})
    assert roles == [(1, "member"), (2, "ensemble"), (2, "member")]


def test_a_restarted_consumer_resumes_the_lifecycle_and_never_regresses(tmp_path: Path, cluster: FakeCluster,
                                                                         backend: FlakyDuckDB) -> None:
    settings, run = begin(tmp_path, cluster, backend, "champion", "champion")
    run_command(settings, "mlp", lambda s: s.rollback(), fake_clients(cluster))
    send_mnist(cluster, range(16))
    run.wait(lambda: len(cluster.messages("predictions")) == 16, "first predictions")
    assert run.finish() is None
    assert {p.model_version for p in predictions(cluster)} == {1}
    backend.close()
    again = FlakyDuckDB(f"duckdb:///{backend.path}")
    again.connect()
    stored_state = again.stored_lifecycle("mlp")
    assert stored_state is not None and Lifecycle.from_json(stored_state[1]).champion == 1
    again.close()
    rerun = LoopRun(settings, cluster, again)  # reads the whole models topic again, v2 included
    send_mnist(cluster, range(16, 32))
    rerun.wait(lambda: len(cluster.messages("predictions")) == 32, "predictions after the restart")
    assert rerun.finish() is None
    assert {p.model_version for p in predictions(cluster)} == {1}
    assert json.loads(stored_state[1])["history"] == [1]


def test_promoting_a_version_never_installed_here_reads_the_topic_again(tmp_path: Path, cluster: FakeCluster,
                                                                        backend: FlakyDuckDB) -> None:
    """A consumer that joined after v2 was withdrawn never installed it and keeps no copy in memory;
    promoting v2 later makes it read the models topic again, install v2 and serve it."""
    settings = loop_settings(tmp_path, batch_size=8)
    for topic in ("models", "images", "predictions", "dlq"):
        cluster.create_topic(topic, 2 if topic == "images" else 1)
    publish_with_role(settings, bundled_model(1), "champion", clients=fake_clients(cluster))
    publish_with_role(settings, bundled_model(2), "shadow", clients=fake_clients(cluster))
    run_command(settings, "mlp", lambda s: s.withdraw(2), fake_clients(cluster))
    run = LoopRun(settings, cluster, backend)
    send_mnist(cluster, range(8))
    run.wait(lambda: len(cluster.messages("predictions")) == 8, "v1 predictions")
    assert run.scorer.watcher.lifecycle.artifacts == {}
    run_command(settings, "mlp", lambda s: s.promote(2), fake_clients(cluster))
    run.wait(lambda: run.scorer.stats.model_version == 2, "the promotion of v2")
    send_mnist(cluster, range(8, 16))
    run.wait(lambda: len(cluster.messages("predictions")) == 16, "v2 predictions")
    assert run.finish() is None
    assert [p.model_version for p in predictions(cluster)] == [1] * 8 + [2] * 8


def test_many_swaps_keep_the_consumer_bounded(tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    """Issue 12 item 5, the part a test can pin: while images flow, 24 champions in a row (three times
    the weights cache) leave the process with a bounded set of weights (DuckDB's cache, the tracker's
    artifacts); every batch is still scored by one version, in publication order."""
    from streamscore.backends.model_cache import MAX_CACHED_VERSIONS as MODEL_CACHE
    from streamscore.producers.lifecycle import TopicView, write_snapshot
    from streamscore.producers.models import publish_model
    from streamscore.shared.model_records import artifact_headers, artifact_key

    settings = loop_settings(tmp_path, batch_size=8)
    for topic in ("models", "images", "predictions", "dlq"):
        cluster.create_topic(topic, 2 if topic == "images" else 1)
    state = publish_with_role(settings, bundled_model(1), "champion", clients=fake_clients(cluster))
    run = LoopRun(settings, cluster, backend)
    producer, view = cluster.make_producer(settings), TopicView(state, {1})
    last = 3 * MODEL_CACHE
    for version in range(2, last + 1):  # the demo's way: records written without reading the topic back
        artifact = bundled_model(1 + version % 2).with_version(version)
        publish_model(settings, artifact, producer=producer, key=artifact_key("mlp", version),
                      extra_headers=artifact_headers("champion"))
        state = state.publish(version, "champion", sha256=artifact.sha256)
        view.artifacts.add(version)
        write_snapshot(settings, view, state, producer)
        send_mnist(cluster, range(4 * version, 4 * version + 4))
    run.wait(lambda: run.scorer.stats.model_version == last, "the last swap", timeout=60)
    send_mnist(cluster, range(500, 508))
    run.wait(lambda: len(cluster.messages("predictions")) == 4 * (last - 1) + 8, "every image", timeout=60)
    assert run.finish() is None
    assert len(backend._models) <= MODEL_CACHE
    assert run.scorer.watcher.lifecycle.artifacts == {}
    served = [p.model_version for p in predictions(cluster)]
    assert served == sorted(served) and served[-8:] == [last] * 8
