"""The closed loop's database half on every engine that stores labeled images (DuckDB, PostgreSQL):
``train --from-backend`` reads the labels the producer sent, trains, validates on a held-out share,
and publishes only above its floor. Training is tiny (1 epoch, ~100 images); skipped without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from contract_hooks import Scope, make_batch, mnist_test

from streamscore.backends import Backend, open_backend
from streamscore.model.trainer import TrainConfig


def stored(backend: Backend, scope: Scope, count: int) -> None:
    """``count`` labeled test images written by the consumer's path (write_batch), then the consumer stops."""
    if "labeled-images" not in backend.implements:
        pytest.skip(f"{backend.name} does not implement 'labeled-images' (train --from-backend)")
    backend.install_model(scope.model(2))
    backend.write_batch(make_batch(scope, range(count), "loop"), scope.ref(2), scope.group)
    backend.close()  # a DuckDB file has one writer: the consumer pauses for the read


def test_labeled_images_come_back_with_their_labels(backend: Backend, scope: Scope) -> None:
    stored(backend, scope, 30)
    reader = open_backend(backend.url.raw)
    with reader:
        pixels, labels = reader.labeled_images()
    split = mnist_test()
    assert pixels.shape == (30, 784) and np.array_equal(pixels, split.images[:30])
    assert np.array_equal(labels, split.labels[:30])


@pytest.mark.tensorflow
def test_train_from_backend_validates_on_a_held_out_share(backend: Backend, scope: Scope) -> None:
    pytest.importorskip("tensorflow", reason="TensorFlow not installed: pip install 'streamscore[train]'")
    from streamscore.ops.retrain import train_from_backend

    stored(backend, scope, 120)
    lines: list[str] = []
    config = TrainConfig(scope.model_name, 5, arch="cnn", epochs=1, batch_size=32)
    result = train_from_backend(backend.url.raw, config, holdout=0.25, floor=0.0, say=lines.append)
    assert (result.trained_on, result.held_out) == (90, 30) and result.passed
    assert result.artifact.version == 5 and result.artifact.layered
    assert result.artifact.manifest["metrics"]["validation"]["held_out"] == 30
    assert "holding out 30" in lines[0] and "floor 0.0000: publishable" in lines[1]
    with open_backend(backend.url.raw) as consumer:  # the consumer can install and score it
        consumer.install_model(result.artifact)
        assert consumer.score(mnist_test().images[:5], scope.ref(5)).shape == (5, 10)


@pytest.mark.tensorflow
def test_the_cli_refuses_to_publish_below_the_floor(backend: Backend, scope: Scope, tmp_path: object) -> None:
    pytest.importorskip("tensorflow", reason="TensorFlow not installed: pip install 'streamscore[train]'")
    if backend.name != "duckdb":
        pytest.skip("the CLI's floor is engine-neutral: checked once, on DuckDB (the library test runs everywhere)")
    stored(backend, scope, 60)
    out = f"{tmp_path}/m.npz"
    result = subprocess.run(
        [sys.executable, "-c", "from streamscore.cli import main; main()", "train", "--from-backend",
         backend.url.raw, "--arch", "dense", "--epochs", "1", "--version", "6", "--floor", "1.0", "--publish",
         "--out", out],
        env=dict(os.environ, COLUMNS="200", STREAMSCORE_MODEL_NAME=scope.model_name,
                 STREAMSCORE_KAFKA_BOOTSTRAP="127.0.0.1:9"),  # never reached: refused before publishing
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 2, result.stderr
    assert "floor 1.0000: below the floor" in result.stdout
    assert "not published" in result.stderr and "published v6" not in result.stdout
