"""Train the seed network inside Kinetica (``streamscore train --backend kinetica://…``).

1. load the MNIST training split into ``training_images`` (skipped when it holds
   the split already), with the same multi-head upsert as the images;
2. run the non-distributed ``udfs/mnist_train.py`` proc, which trains with numpy
   and writes ``model_layers`` + ``models`` rows (model id, loss, created time);
3. read the version back (its digest proves the rows are intact), add canary images
   and the test accuracy to the manifest, reinstall it, and return the artifact for
   publishing on the model topic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamscore.backends.base import ModelRef
from streamscore.backends.kinetica import KineticaBackend, procs
from streamscore.errors import ArtifactError
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import predict
from streamscore.model.trainer import CANARY_COUNT
from streamscore.shared.mnist import MnistSplit, load_split

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 10_000


def upload_training(backend: KineticaBackend, split: MnistSplit) -> int:
    """Upsert the split into ``training_images`` unless it is there already; rows sent."""
    with backend.translate_errors("counting training rows"):
        present = int(backend._query("count_training", [])[0][0])
    if present == len(split):
        return 0
    for start in range(0, len(split), UPLOAD_CHUNK):
        stop = min(start + UPLOAD_CHUNK, len(split))
        records = [
            [split.image_id(i), split.images[i].tobytes(), int(split.labels[i])]
            for i in range(start, stop)
        ]
        with backend.translate_errors("uploading training images"):
            backend._upsert("training_images", records)
    return len(split)


#: ``TrainConfig.version`` asking for the next version: the highest installed one + 1 (versions are ≥ 1)
NEXT_VERSION = 0


def resolve_version(backend: KineticaBackend, name: str, version: int) -> int:
    """The version to train: ``version``, or for :data:`NEXT_VERSION` the highest installed + 1
    (1 when none is); ArtifactError ``version-conflict`` when ``version`` is installed: the
    training UDF would overwrite the rows of a version consumers may be serving."""
    installed = backend.installed_versions(name)
    if version == NEXT_VERSION:
        return max(installed, default=0) + 1
    if version in installed:
        raise ArtifactError(
            f"model {name} v{version} is already installed in Kinetica (installed: "
            f"{', '.join(map(str, installed))}): train a new version, e.g. --version {max(installed) + 1}",
            reason="version-conflict",
        )
    return version


def train_in_database(
    backend: KineticaBackend,
    *,
    steps: int,
    version: int,
    name: str = "mlp",
    hidden: Sequence[int] = (100,),
    batch_size: int = 100,
    learning_rate: float = 0.5,
    seed: int = 2016,
    mnist_dir: Path | None = None,
    timeout: float = 3600.0,
) -> ModelArtifact:
    """Train in Kinetica and return the verified artifact (also installed as ``version``).

    :param backend: a connected Kinetica backend
    :param steps: SGD steps of ``batch_size`` images
    :param version: model version to write; :data:`NEXT_VERSION` (0, the CLI's default) for the
        highest installed + 1; refused when installed already (it would overwrite the weights of
        a version consumers may be serving)
    :param mnist_dir: folder with the MNIST IDX files (default: the bundled/shared data)
    :param timeout: seconds to wait for the training proc
    """
    backend.init_schema()
    version = resolve_version(backend, name, version)
    log.info("training %s v%d in Kinetica", name, version)
    train = load_split("train", mnist_dir)
    test = load_split("test", mnist_dir)
    sent = upload_training(backend, train)
    log.info("training images: %s", f"uploaded {sent}" if sent else "already loaded")
    with backend.translate_errors("running the training UDF"):
        proc = procs.register(backend.db, procs.TRAIN_UDF, "nondistributed")
        run = procs.execute(
            backend.db, proc,
            params={
                "schema": backend.schema, "train_table": "training_images",
                "model_name": name, "model_version": str(version), "steps": str(steps),
                "hidden": ",".join(str(h) for h in hidden), "batch_size": str(batch_size),
                "learning_rate": str(learning_rate), "seed": str(seed),
            },
            timeout=timeout,
        )
    log.info("training run %s finished: %s", run.run_id, run.results)
    trained = backend.load_model(ModelRef(name, version))
    accuracy = float((predict(trained.forward(test.images)) == test.labels).mean())
    metrics = dict(trained.manifest.get("metrics", {})) | {"test_accuracy": round(accuracy, 4)}
    artifact = build_artifact(
        name, version, trained.weights, trained.biases, trained.activations,
        metrics=metrics, canary_pixels=np.ascontiguousarray(test.images[:CANARY_COUNT]),
        input_scale=trained.input_scale,
    )
    backend.install_model(artifact)
    return artifact
