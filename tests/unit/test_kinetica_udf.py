"""The Kinetica UDFs: scoring math vs the numpy reference, and harness runs of both entry points."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kinetica_harness as harness
from streamscore.backends.kinetica import tables
from streamscore.model.artifact import ModelArtifact, build_artifact, weights_digest
from streamscore.model.reference import forward
from streamscore.shared.config import default_mnist_dir
from streamscore.shared.mnist import MnistSplit, load_split


@pytest.fixture(scope="module")
def infer() -> ModuleType:
    return harness.load_udf("mnist_infer.py")


@pytest.fixture(scope="module")
def trainer() -> ModuleType:
    return harness.load_udf("mnist_train.py")


@pytest.fixture(scope="module")
def test_split() -> MnistSplit:
    return load_split("test")


@pytest.fixture(scope="module")
def artifact(trainer: ModuleType, test_split: MnistSplit) -> ModelArtifact:
    """A quickly trained 784-100-10 net (the UDF trainer on the first 5,000 test images)."""
    w, b, _ = trainer.train(test_split.images[:5000], test_split.labels[:5000], steps=300)
    return build_artifact("mlp", 3, w, b, ["sigmoid", "softmax"])


def udf_model(infer: ModuleType, artifact: ModelArtifact) -> Any:
    rows = [(r[2], r[3], r[4], r[5], r[6], r[7]) for r in tables.layer_records(artifact)]
    mid = tables.model_id(artifact.name, artifact.version, artifact.sha256)
    return infer.model_from_layers(mid, artifact.input_scale, rows)


def test_udf_forward_matches_reference_on_mnist(
    infer: ModuleType, artifact: ModelArtifact, test_split: MnistSplit
) -> None:
    model = udf_model(infer, artifact)  # weights go through the model_layers byte format
    got = infer.forward(test_split.images, model)
    want = forward(test_split.images, artifact.weights, artifact.biases,
                   artifact.activations, artifact.input_scale)
    assert got.shape == (10_000, 10)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() >= 0.999
    assert float(np.abs(got - want).max()) <= 1e-4


def test_udf_digest_and_model_id_match_streamscore(trainer: ModuleType, artifact: ModelArtifact) -> None:
    assert trainer.weights_digest(artifact.weights, artifact.biases) == weights_digest(
        artifact.weights, artifact.biases)
    assert trainer.model_id("mlp", 3, artifact.sha256) == tables.model_id("mlp", 3, artifact.sha256)


def infer_params(artifact: ModelArtifact, batch_id: str) -> dict[str, str]:
    return {"batch_id": batch_id, "model_name": artifact.name, "model_version": str(artifact.version),
            "role": "champion", **tables.weights_params(artifact)}


def test_inference_udf_in_harness(
    infer: ModuleType, artifact: ModelArtifact, test_split: MnistSplit, tmp_path: Path
) -> None:
    ids = [test_split.image_id(i) for i in range(30)]
    batch = ["b1" if i % 3 else "b0" for i in range(30)]  # the inbox holds two batches in flight
    table = harness.Table("streamscore.score_inbox", harness.INFER_INPUT, {
        "image_id": ids, "pixels": [test_split.images[i].tobytes() for i in range(30)],
        "batch_id": batch,
    })
    run = harness.run_udf(
        infer.main, tmp_path, params=infer_params(artifact, "b1"), inputs=[table],
        outputs=[harness.Table("streamscore.prediction_stage", harness.INFER_OUTPUT)],
    )
    out = run.outputs["streamscore.prediction_stage"]
    mine = [i for i in range(30) if batch[i] == "b1"]
    assert run.results == {"scored": str(len(mine)), "read": "30"}
    assert out["image_id"] == [ids[i] for i in mine]
    assert set(out["batch_id"]) == {"b1"} and set(out["model_version"]) == {3}
    assert set(out["model_id"]) == {tables.model_id("mlp", 3, artifact.sha256)}
    probs = np.array([out[f"p{k}"] for k in range(10)]).T
    want = artifact.forward(test_split.images[mine])
    assert np.abs(probs - want).max() <= 1e-6  # float32 columns round-trip exactly
    assert out["predicted"] == want.argmax(axis=1).tolist()


def test_inference_udf_over_hash_split_segments(
    infer: ModuleType, artifact: ModelArtifact, test_split: MnistSplit, tmp_path: Path
) -> None:
    ids = [test_split.image_id(i) for i in range(40)]
    table = harness.Table("s.score_inbox", harness.INFER_INPUT, {
        "image_id": ids, "pixels": [test_split.images[i].tobytes() for i in range(40)], "batch_id": ["b"] * 40,
    })
    runs = harness.run_distributed(
        infer.main, tmp_path, params=infer_params(artifact, "b"), inputs=[table],
        outputs=[harness.Table("s.prediction_stage", harness.INFER_OUTPUT)], segments=3,
    )
    assert all(run.rows_in > 0 for run in runs) and sum(run.rows_in for run in runs) == 40
    scored = sorted(i for run in runs for i in run.outputs["s.prediction_stage"]["image_id"])
    assert scored == sorted(ids)


def test_inference_udf_with_no_rows_of_the_batch(infer: ModuleType, tmp_path: Path) -> None:
    table = harness.Table("t", harness.INFER_INPUT, {"image_id": ["a"], "pixels": [bytes(784)],
                                                    "batch_id": ["other"]})
    params = {"batch_id": "b9", "model_name": "mlp", "model_version": "1", "role": "champion",
              "model_id": "x", "sha256": "0" * 64, "input_scale": "1", "layers": "[]"}  # never decoded
    run = harness.run_udf(infer.main, tmp_path, params=params, inputs=[table],
                          outputs=[harness.Table("o", harness.INFER_OUTPUT)])
    assert run.results == {"scored": "0", "read": "1"}
    assert run.outputs["o"]["image_id"] == []


def test_infer_rejects_a_model_with_a_missing_layer(infer: ModuleType, artifact: ModelArtifact) -> None:
    rows = [(r[2], r[3], r[4], r[5], r[6], r[7]) for r in tables.layer_records(artifact)]
    with pytest.raises(ValueError, match="layer 0 is missing"):
        infer.model_from_layers("x", 1 / 255, rows[1:])


class MemoryStore:
    """The training UDF's data access, in memory."""

    def __init__(self, split: MnistSplit) -> None:
        self.split = split
        self.layers: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []

    def load_training(self, table: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
        assert table == "training_images"
        n = limit or len(self.split)
        return self.split.images[:n], self.split.labels[:n].astype(np.int64)

    def write_model(self, layers: list[dict[str, Any]], model: dict[str, Any]) -> None:
        self.layers, self.models = layers, [model]


def test_training_udf_in_harness(trainer: ModuleType, test_split: MnistSplit, tmp_path: Path) -> None:
    mnist_dir = default_mnist_dir()
    split = load_split("train", mnist_dir) if (mnist_dir / "train-images-idx3-ubyte.gz").exists() \
        else test_split
    store = MemoryStore(split)
    run = harness.run_udf(
        lambda: trainer.main(store), tmp_path, rank=0,
        params={"schema": "streamscore", "train_table": "training_images", "model_name": "mlp",
                "model_version": "7", "steps": "600", "limit": "20000"},
    )
    model = store.models[0]
    assert run.results == {"model_id": model["model_id"], "loss": str(model["loss"])}
    assert [tables.TABLES["models"][i][0] for i in range(len(model))] == list(model)
    assert [c[0] for c in tables.LAYER_COLUMNS] == list(store.layers[0])
    # the rows rebuild into a verified streamscore artifact that has learned something
    head = [model["model_id"], model["sha256"], model["input_scale"], model["manifest"], None]
    rows = [list(layer.values())[2:] for layer in store.layers]
    artifact = tables.artifact_from_rows("mlp", 7, head, rows)
    accuracy = (artifact.forward(test_split.images).argmax(axis=1) == test_split.labels).mean()
    assert accuracy > 0.85
    assert artifact.manifest["metrics"]["trainer"] == "kinetica-udf"
    assert 0 < model["loss"] < 1.0


def test_infer_verifies_the_weights_digest(infer: ModuleType, artifact: ModelArtifact) -> None:
    # issue 17 item 4: the UDF trusted the model id without checking the weights
    rows = [(r[2], r[3], r[4], r[5], r[6], r[7]) for r in tables.layer_records(artifact)]
    assert infer.weights_digest(rows) == weights_digest(artifact.weights, artifact.biases)
    assert infer.model_from_layers("x", 1 / 255, rows, artifact.sha256).model_id == "x"
    tampered = [*rows[:-1], (*rows[-1][:5], bytes(x ^ 1 for x in rows[-1][5]))]  # a bit of every bias byte
    with pytest.raises(ValueError, match="do not match"):
        infer.model_from_layers("x", 1 / 255, tampered, artifact.sha256)
    params = tables.weights_params(artifact)
    assert infer.model_from_params(params).model_id == tables.model_id("mlp", 3, artifact.sha256)
    with pytest.raises(ValueError, match="do not match"):
        infer.model_from_params(params | {"sha256": "0" * 64})


def udf_python() -> str:
    """Exactly a Python 3.10 with numpy, like Kinetica's default UDF environment (3.10, numpy 2.2.6):
    ``STREAMSCORE_UDF_PYTHON``, else ``python3.10`` on PATH; skips when there is none."""
    candidates = [os.environ.get("STREAMSCORE_UDF_PYTHON"), shutil.which("python3.10")]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import sys, numpy; print(sys.version_info[:2] == (3, 10))"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return python
    pytest.skip("no Python 3.10 with numpy (Kinetica's UDF environment): set STREAMSCORE_UDF_PYTHON")


def test_inference_udf_under_kineticas_python(
    artifact: ModelArtifact, test_split: MnistSplit, tmp_path: Path
) -> None:
    # issue 17 item 10: the UDF runs as its own process under Kinetica's Python, not ours
    python = udf_python()
    version = subprocess.run([python, "-c", "import sys, numpy; print(sys.version.split()[0], numpy.__version__)"],
                             capture_output=True, text=True, check=True).stdout.split()
    ids = [test_split.image_id(i) for i in range(40)]
    table = harness.Table("s.score_inbox", harness.INFER_INPUT, {
        "image_id": ids, "pixels": [test_split.images[i].tobytes() for i in range(40)], "batch_id": ["b"] * 40,
    })
    runs = harness.run_distributed(
        [python, str(harness.ROOT / "udfs" / "mnist_infer.py")], tmp_path, params=infer_params(artifact, "b"),
        inputs=[table], outputs=[harness.Table("s.prediction_stage", harness.INFER_OUTPUT)], segments=2,
    )
    out = {name: [v for run in runs for v in run.outputs["s.prediction_stage"][name]]
           for name, _ in harness.INFER_OUTPUT}
    order = [ids.index(i) for i in out["image_id"]]
    probs = np.array([out[f"p{k}"] for k in range(10)]).T
    assert sorted(order) == list(range(40)), version
    assert np.abs(probs - artifact.forward(test_split.images[order])).max() <= 1e-5, version


def test_training_udf_math_under_kineticas_python(test_split: MnistSplit, tmp_path: Path) -> None:
    python = udf_python()
    np.save(tmp_path / "x.npy", test_split.images[:2000])
    np.save(tmp_path / "y.npy", test_split.labels[:2000].astype(np.int64))
    script = (
        "import runpy, sys, numpy as np\n"
        f"m = runpy.run_path({str(harness.ROOT / 'udfs' / 'mnist_train.py')!r})\n"
        f"x, y = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'y.npy')!r})\n"
        "w, b, loss = m['train'](x, y, steps=200)\n"
        "np.savez(sys.argv[1], *w, *b)\n"
    )
    subprocess.run([python, "-c", script, str(tmp_path / "net.npz")], check=True, capture_output=True)
    saved = np.load(tmp_path / "net.npz")
    arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    artifact = build_artifact("mlp", 1, arrays[:2], arrays[2:], ["sigmoid", "softmax"])
    accuracy = (artifact.forward(test_split.images[5000:]).argmax(axis=1) == test_split.labels[5000:]).mean()
    assert accuracy > 0.6  # learned under Kinetica's Python, checked under ours


def test_infer_scores_the_bundled_cnn_and_verifies_its_layer_list(infer: ModuleType, test_split: MnistSplit) -> None:
    """The layered v4 through the run's params: the UDF mirrors forward_layers and its digest
    covers the layer list, so a changed layer list is refused like changed weights."""
    from streamscore.models import bundled_model

    cnn = bundled_model(4)
    params = tables.weights_params(cnn)
    model = infer.model_from_params(params)
    got = infer.forward(test_split.images[:2000], model)
    want = cnn.forward(test_split.images[:2000])
    assert float(np.abs(got - want).max()) <= 1e-6
    altered = params | {"spec": params["spec"].replace('"pool":[2,2]', '"pool":[1,1]', 1)}
    with pytest.raises(ValueError, match="do not match"):
        infer.model_from_params(altered)


def test_layered_udf_and_its_digest_check_under_kineticas_python(test_split: MnistSplit, tmp_path: Path) -> None:
    # issue 17 item 10: the layered path (conv2d, maxpool2d, flatten) and the sha256 check run as
    # their own process under Kinetica's Python too, not only the dense stack
    from streamscore.models import bundled_model

    python, cnn = udf_python(), bundled_model(4)
    table = harness.Table("s.score_inbox", harness.INFER_INPUT, {
        "image_id": [test_split.image_id(i) for i in range(60)],
        "pixels": [test_split.images[i].tobytes() for i in range(60)], "batch_id": ["b"] * 60,
    })
    udf = [python, str(harness.ROOT / "udfs" / "mnist_infer.py")]
    outputs = [harness.Table("s.prediction_stage", harness.INFER_OUTPUT)]
    runs = harness.run_distributed(udf, tmp_path / "ok", params=infer_params(cnn, "b"), inputs=[table],
                                   outputs=outputs, segments=2)
    out = {name: [v for run in runs for v in run.outputs["s.prediction_stage"][name]]
           for name in ("image_id", *tables.PROBABILITY_COLUMNS)}
    order = [int(image_id.rsplit("-", 1)[1]) for image_id in out["image_id"]]
    assert sorted(order) == list(range(60))
    probs = np.array([out[f"p{k}"] for k in range(10)]).T
    assert np.abs(probs - cnn.forward(test_split.images[order])).max() <= 1e-5
    altered = infer_params(cnn, "b") | {"sha256": "0" * 64}
    with pytest.raises(AssertionError, match="do not match"):
        harness.run_distributed(udf, tmp_path / "bad", params=altered, inputs=[table],
                                outputs=[harness.Table("s.prediction_stage", harness.INFER_OUTPUT)], segments=2)
