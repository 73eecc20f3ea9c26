"""The closed loop: train on the labeled images a database already stored (``train --from-backend``).

stream → database → train → models topic → hot swap. The images come with the label header the
producer sent, which the consumers store with them; this reads every labeled image, holds out a
seeded share for validation, trains (TensorFlow, :mod:`streamscore.model.trainer`) on the rest and
reports the validation accuracy against a floor. The CLI publishes only a model at or above it.

DuckDB allows one process per database file: the read happens on a connection that is closed
before training starts, so a consumer writing that file has to be stopped only for the read (it
resumes from the offsets stored in the file) — or train from PostgreSQL, which many processes share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamscore.backends import open_backend
from streamscore.backends.url import BackendURL
from streamscore.errors import BackendError, ConfigError
from streamscore.model.artifact import ModelArtifact
from streamscore.model.trainer import TrainConfig, train
from streamscore.shared.mnist import MnistSplit

#: fewer labeled images than this cannot be split into a training and a validation share
MIN_IMAGES = 20


@dataclass(frozen=True)
class RetrainResult:
    artifact: ModelArtifact
    accuracy: float  # on the held-out images
    floor: float
    trained_on: int
    held_out: int

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.floor


def read_labeled(url: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, labels) of every labeled image stored at ``url``; the connection is closed on return."""
    database = open_backend(url)
    database.require("labeled-images")
    try:
        with database:
            return database.labeled_images()
    except BackendError as exc:
        if database.name != "duckdb" or exc.reason != "database-locked" or "lock" not in exc.message.lower():
            raise
        # not worth retrying here: the lock is held until the consumer using the file stops
        raise BackendError(
            f"{exc.message} — a DuckDB file has one writer: stop the consumer using "
            f"{BackendURL.parse(url).masked()} for the read (it resumes from its stored offsets), "
            "or train from a PostgreSQL backend", reason=exc.reason,
        ) from exc


def train_from_backend(
    url: str, config: TrainConfig, *, holdout: float, floor: float, say: Callable[[str], None] = print,
) -> RetrainResult:
    """Train ``config`` on the labeled images at ``url`` and measure it on a held-out share."""
    pixels, labels = read_labeled(url)
    where = BackendURL.parse(url).masked()
    if len(labels) < MIN_IMAGES:
        raise ConfigError(f"{where} holds {len(labels)} labeled images; training needs at least {MIN_IMAGES}: "
                          "stream more images with labels first")
    order = np.random.default_rng(config.seed).permutation(len(labels))
    count = min(len(labels) - 1, max(1, round(len(labels) * holdout)))
    held, rest = order[:count], order[count:]
    say(f"read {len(labels):,} labeled images from {where}: training {config.arch} on {len(rest):,}, "
        f"holding out {count:,} for validation")
    artifact = train(config, MnistSplit("train", pixels[rest], labels[rest]),
                     MnistSplit("test", pixels[held], labels[held]))
    metrics = artifact.manifest.get("metrics", {}) | {
        "validation": {"source": where, "held_out": count, "holdout_seed": config.seed},
    }  # test_accuracy is the held-out share's; the metrics are not part of the digest
    artifact = dataclasses.replace(artifact, manifest=artifact.manifest | {"metrics": metrics})
    accuracy = float(metrics.get("test_accuracy", 0.0))
    verdict = "publishable" if accuracy >= floor else "below the floor: not published"
    say(f"validation accuracy {accuracy:.4f} on {count:,} held-out images; floor {floor:.4f}: {verdict}")
    return RetrainResult(artifact, accuracy, floor, len(rest), count)
