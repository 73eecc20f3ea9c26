"""Automatic rollback (streamscore.consumers.auto_rollback): the window logic on its own, then in the
loop on fake Kafka with DuckDB: a deliberately bad but well-formed champion (v1's weights with the
output units permuted, so its canary matches and it installs) is rolled back and v1 serves again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamscore.consumers.auto_rollback import AutoRollback
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.models import bundled_model
from streamscore.producers.lifecycle import publish_with_role, read_topic, rollback_action
from streamscore.shared.messages import Prediction
from support.fake_kafka import FakeCluster
from support.lifecycle import fake_clients, predictions, send_mnist
from support.loop_harness import FlakyDuckDB, LoopRun, loop_settings


def prediction(version: int, correct: bool, at: int, role: str = "champion") -> Prediction:
    return Prediction(f"i{at}", 3 if correct else 4, (0.1,) * 10, 3, "mlp", version, role, "duckdb", 0, at)


def test_the_window_fires_once_when_the_champion_falls_below_the_previous_one() -> None:
    calls: list[tuple[str, int, str]] = []
    judge = AutoRollback(window=10, margin=0.2, rollback=lambda *call: calls.append(call) is None)
    for at in range(10):
        judge.observe(prediction(1, True, at))
    for at in range(10, 19):
        judge.observe(prediction(2, at % 2 == 0, at))
        judge.observe(prediction(3, False, at, role="shadow"))  # shadows never count
    assert calls == []  # v2's window is not full yet
    judge.observe(prediction(2, False, 19))
    judge.observe(prediction(2, False, 20))
    assert [(name, version) for name, version, _ in calls] == [("mlp", 2)]
    assert "v2 accuracy 0.5000" in calls[0][2] and "v1's 1.0000" in calls[0][2]
    for at in range(21, 40):  # v1 serves again: nothing more to do
        judge.observe(prediction(1, True, at))
    assert len(calls) == 1


def test_a_small_drop_within_the_margin_is_tolerated() -> None:
    calls: list[object] = []
    judge = AutoRollback(window=10, margin=0.2, rollback=lambda *call: calls.append(call) is None)
    for at in range(10):
        judge.observe(prediction(1, True, at))
    for at in range(10, 20):
        judge.observe(prediction(2, at != 10, at))  # 0.9 vs 1.0
    assert calls == []


def permuted(artifact: ModelArtifact, version: int) -> ModelArtifact:
    """Well-formed, wrong: the output units rotated by three (its own canary is computed from it)."""
    order = np.roll(np.arange(10), 3)
    weights, biases = list(artifact.weights), list(artifact.biases)
    weights[-1], biases[-1] = weights[-1][:, order], biases[-1][order]
    return build_artifact(artifact.name, version, weights, biases, artifact.activations,
                          canary_pixels=artifact.canary_pixels, input_scale=artifact.input_scale)


def test_a_bad_champion_is_rolled_back_and_the_previous_one_serves_again(tmp_path: Path,
                                                                         backend: FlakyDuckDB) -> None:
    cluster = FakeCluster()
    clients = fake_clients(cluster)
    settings = loop_settings(tmp_path, batch_size=16)
    for topic in ("models", "images", "predictions", "dlq"):
        cluster.create_topic(topic, 2 if topic == "images" else 1)
    publish_with_role(settings, bundled_model(1), "champion", clients=clients)
    run = LoopRun(settings, cluster, backend)
    judge = AutoRollback(window=48, margin=0.3, rollback=rollback_action(settings, clients))
    seen = 0

    def feed(count: int) -> None:
        nonlocal seen
        run.wait(lambda: len(cluster.messages("predictions")) >= count, f"{count} predictions")
        for p in predictions(cluster)[seen:]:
            judge.observe(p)
        seen = len(cluster.messages("predictions"))

    send_mnist(cluster, range(64))
    feed(64)
    publish_with_role(settings, permuted(bundled_model(1), 2), "champion", clients=clients)
    for start in range(64, 320, 32):  # waves until the bad version has a full window and is rolled back
        send_mnist(cluster, range(start, start + 32))
        feed(start + 32)
        if judge.fired:
            break
    assert judge.fired and "mlp v2 accuracy" in judge.fired[0]
    assert read_topic(settings, "mlp", clients).lifecycle.champion == 1
    after = len(cluster.messages("predictions"))
    send_mnist(cluster, range(1000, 1064))
    feed(after + 64)
    assert run.finish() is None
    served = [p.model_version for p in predictions(cluster)]
    assert served[:64] == [1] * 64 and 2 in served and served[-32:] == [1] * 32
