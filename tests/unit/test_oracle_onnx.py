"""The ONNX export of a model artifact, scored by onnxruntime on all 10,000 MNIST test images,
and the Oracle side of ``scorer=onnx`` as far as it can be checked without a database.

Agreement with the numpy reference as promised for every in-database scorer (argmax ≥ 99.9 %,
|Δp| ≤ 1e-4), the weights carried bit for bit, and a graph Oracle 23ai's ONNX Runtime (1.15,
IR ≤ 9) can load. For Oracle: the generated statement's 784 attributes, the identifiers, the
fallback before 23ai, and the order of calls (the model is loaded, DDL, before a batch's
transaction) against a fake connection. LOAD_ONNX_MODEL and PREDICTION never ran here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import oracledb
import pytest

from oracle_fakes import FakeConnection, make_batch, prediction_rows, rows_from_binds
from oracle_ports import assert_agrees, fitted_artifact
from streamscore.backends import BackendURL, ModelRef
from streamscore.backends.oracle import OracleBackend, onnx_model, onnx_scorer
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.errors import ArtifactError
from streamscore.model.artifact import build_artifact
from streamscore.model.reference import predict
from streamscore.shared.mnist import MnistSplit

onnx = pytest.importorskip("onnx", reason="pip install onnx (the onnx extra)")
ort = pytest.importorskip("onnxruntime", reason="pip install onnxruntime (dev extra)")


def run(model_bytes: bytes, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    probabilities, labels = session.run(["probabilities", "label"], {"pixels": pixels.astype(np.float32)})
    return probabilities, labels


@pytest.mark.parametrize(
    ("sizes", "activations", "seed"),
    [
        ((784, 100, 10), ("sigmoid", "softmax"), 1),
        ((784, 64, 16, 10), ("relu", "tanh", "softmax"), 2),
    ],
)
def test_onnxruntime_agrees_with_the_reference_on_all_mnist_test_images(
    test_split: MnistSplit, sizes: tuple[int, ...], activations: tuple[str, ...], seed: int,
) -> None:
    artifact = fitted_artifact(sizes, activations, seed, test_split)
    probabilities, labels = run(onnx_model.to_onnx_bytes(artifact), test_split.images)
    reference = artifact.forward(test_split.images)
    assert probabilities.dtype == np.float32 and probabilities.shape == (10_000, 10)
    assert_agrees(probabilities, reference)
    assert np.array_equal(labels, predict(probabilities))


def test_the_graph_carries_the_weights_and_loads_in_old_runtimes() -> None:
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(784, 8)).astype(np.float32), rng.normal(size=(8, 10)).astype(np.float32)]
    biases = [rng.normal(size=8).astype(np.float32), rng.normal(size=10).astype(np.float32)]
    artifact = build_artifact("tiny", 3, weights, biases, ("identity", "softmax"))
    model = onnx_model.to_onnx(artifact)
    assert model.ir_version <= 9 and model.opset_import[0].version <= 19  # ONNX Runtime 1.15
    stored = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        assert np.array_equal(stored[f"w{index}"].view(np.uint32), w.view(np.uint32))
        assert np.array_equal(stored[f"b{index}"].view(np.uint32), b.view(np.uint32))
    assert stored["input_scale"][0] == np.float32(artifact.input_scale)
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["Mul", "Gemm", "Gemm", "Softmax", "Identity", "ArgMax"]  # identity adds no op
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert props["streamscore.sha256"] == artifact.sha256


def test_oracle_metadata_names_784_attributes_and_the_outputs() -> None:
    metadata = onnx_model.oracle_metadata()
    assert metadata["function"] == "classification"
    assert metadata["input"]["pixels"] == [f"P{i}" for i in range(784)]
    assert metadata["classificationProbOutput"] == "probabilities"
    assert metadata["labels"] == list(range(10))


def test_an_unknown_activation_is_refused() -> None:
    rng = np.random.default_rng(6)
    artifact = build_artifact("odd", 1, [rng.normal(size=(784, 10)).astype(np.float32)],
                              [np.zeros(10, np.float32)], ("softmax",))
    odd = type(artifact)(artifact.name, 1, ("gelu",), artifact.input_scale, artifact.weights, artifact.biases)
    with pytest.raises(ArtifactError, match="gelu"):
        onnx_model.to_onnx(odd)


# -- the Oracle side (scorer=onnx): statement text and call order, against a fake connection -----

def test_the_onnx_scorer_is_chosen_by_scorer_onnx_or_the_deprecated_onnx_1() -> None:
    assert oracle_sql.parse_target(BackendURL.parse("oracle://a@h/s?scorer=onnx")).onnx
    assert oracle_sql.parse_target(BackendURL.parse("oracle://a@h/s?onnx=1")).onnx
    assert not oracle_sql.parse_target(BackendURL.parse("oracle://a@h/s")).onnx
    assert "scorer" in OracleBackend.url_options


def test_each_version_gets_its_own_identifier() -> None:
    names = {onnx_scorer.mining_model_name(ModelRef(name, version))
             for name in ("mlp", "MLP", "mlp x", "ü") for version in (1, 2)}
    assert len(names) == 8
    assert all(re.fullmatch(r"SS_[0-9A-F]{24}", name) for name in names)


def test_the_scoring_statement_feeds_the_784_attributes_in_order() -> None:
    ref = ModelRef("mlp", 3)
    text = onnx_scorer.score_statement(ref)
    assert "{" not in text
    assert text.count(onnx_scorer.mining_model_name(ref)) == 11
    columns = re.findall(r"UTL_RAW\.SUBSTR\(i\.pixels, (\d+), 1\)\), 'XX'\) AS (P\d+)", text)
    assert columns == [(str(k + 1), f"P{k}") for k in range(784)]
    using = re.findall(r"USING ([^)]*)\)", text)
    assert len(using) == 11 and all(u == ", ".join(f"v.P{k}" for k in range(784)) for u in using)
    assert onnx_scorer.attribute_names() == onnx_model.oracle_metadata()["input"]["pixels"]


def connected(monkeypatch: pytest.MonkeyPatch, version: str) -> tuple[OracleBackend, FakeConnection]:
    conn = FakeConnection()
    conn.version = version  # type: ignore[attr-defined]
    monkeypatch.setattr(oracledb, "connect", lambda **kwargs: conn)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1?onnx=1"))
    backend.connect()
    return backend, conn


def test_before_23ai_the_plsql_scorer_is_used(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    backend, conn = connected(monkeypatch, "19.24.0.0.0")
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    backend.write_batch(make_batch(["a"]), ModelRef("mlp", 1), "g")
    assert ("callproc", "mnist_scorer.score_staged") in conn.log
    assert "needs Oracle 23ai" in caplog.text


def test_on_23ai_a_version_is_loaded_once_and_scored_in_one_statement(
    monkeypatch: pytest.MonkeyPatch, test_split: MnistSplit,
) -> None:
    backend, conn = connected(monkeypatch, "23.26.0.0.0")
    artifact = fitted_artifact((784, 16, 10), ("relu", "softmax"), 7, test_split).with_version(1)
    model_row, layer_rows = rows_from_binds(artifact)
    conn.results["SELECT sha256, layer_count,"] = [model_row]
    conn.results["SELECT layer_no, n_in,"] = layer_rows
    conn.results["SELECT COUNT(*) FROM"] = [(0,)]
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    loaded: list[Any] = []
    conn.lookups["BEGIN DBMS_VECTOR.LOAD_ONNX_MODEL(:1, :2,"] = lambda params: loaded.append(params) or []
    ref = ModelRef(artifact.name, 1)
    backend.write_batch(make_batch(["a"]), ref, "g")
    backend.write_batch(make_batch(["a"], "b-2"), ref, "g")
    (name, model_bytes, metadata), = loaded
    assert name == onnx_scorer.mining_model_name(ref)
    assert model_bytes == onnx_model.to_onnx_bytes(artifact)
    assert json.loads(metadata) == onnx_model.oracle_metadata()
    executed = [entry[1] for entry in conn.log if entry[0] == "execute"]
    assert executed.count("INSERT INTO mnist_predictions") == 2
    assert not any(entry[0] == "callproc" for entry in conn.log)
    first_commit = conn.log.index(("commit",))
    load = conn.log.index(("execute", "BEGIN DBMS_VECTOR.LOAD_ONNX_MODEL(:1, :2,"))
    images = conn.log.index(("executemany", "mnist_images", True))
    assert load < images < first_commit  # the DDL ran before the batch's transaction began
