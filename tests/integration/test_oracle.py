"""The Oracle backend against a real database (see tests/oracle_fixtures.py for where it comes from).

Checks the design's promises on real MNIST test images: PL/SQL probabilities agree with
the numpy reference (argmax ≥ 99.9 %, probabilities within 1e-4), replays and repeated ids
are stored once, offsets commit with the rows, a model switch reloads the weights once
without recompiling anything, and ``score`` stores nothing.

Every run uses fresh model names and image ids, so a long-lived database can be reused.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator

import numpy as np
import oracledb
import pytest

from streamscore.backends import ImageBatch, ModelRef, SourceOffset, open_backend
from streamscore.backends.oracle import OracleBackend
from streamscore.backends.records import PurgeReport
from streamscore.errors import BackendDataError
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import predict
from streamscore.shared.mnist import MnistSplit, load_split

pytestmark = pytest.mark.oracle

RUN = uuid.uuid4().hex[:8]
GROUP = f"it-{RUN}"


def random_artifact(name: str, version: int, sizes: tuple[int, ...], activations: tuple[str, ...],
                    seed: int) -> ModelArtifact:
    """A model with random float32 weights (fixed seed): agreement does not need a good model."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32)
               for a, b in itertools.pairwise(sizes)]
    biases = [rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]]
    return build_artifact(name, version, weights, biases, activations)


def image_batch(mnist: MnistSplit, rows: list[int], batch_id: str, prefix: str = RUN) -> ImageBatch:
    index = np.asarray(rows)
    ids = [f"{prefix}-{mnist.image_id(row)}" for row in rows]
    sources = [SourceOffset("mnist.images", 0, row) for row in rows]
    return ImageBatch(
        batch_id, ids, mnist.images[index], mnist.labels[index].astype(np.int16),
        np.full(len(rows), 1_700_000_000_000, np.int64), sources,
        {("mnist.images", 0): max(rows) + 1},
    )


def cache_loads(backend: OracleBackend) -> int:
    """How often this session's MNIST_SCORER read weights (package state, same session)."""
    with backend._connection().cursor() as cursor:
        return int(cursor.callfunc("mnist_scorer.cache_loads", int))


def scalar(backend: OracleBackend, sql: str, *binds: object) -> int:
    with backend._connection().cursor() as cursor:
        cursor.execute(sql, list(binds))
        row = cursor.fetchone()
        return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def mnist() -> MnistSplit:
    return load_split("test")


@pytest.fixture(scope="module")
def backend(oracle_url: str) -> Iterator[OracleBackend]:
    opened = open_backend(oracle_url)
    assert isinstance(opened, OracleBackend)
    opened.connect()
    opened.init_schema()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def champion(backend: OracleBackend) -> ModelArtifact:
    artifact = random_artifact(f"mlp-{RUN}", 1, (784, 100, 10), ("sigmoid", "softmax"), seed=1)
    backend.install_model(artifact)
    backend.install_model(artifact)  # idempotent
    return artifact


def test_init_schema_twice_does_not_recompile(backend: OracleBackend, champion: ModelArtifact,
                                              mnist: MnistSplit) -> None:
    ref = ModelRef(champion.name, champion.version)
    backend.score(mnist.images[:2], ref)  # package state now holds the model
    loads = cache_loads(backend)
    backend.init_schema()
    backend.init_schema()
    backend.score(mnist.images[:2], ref)  # no ORA-04068, no reload
    assert cache_loads(backend) == loads


def test_all_test_images_agree_with_reference(backend: OracleBackend, champion: ModelArtifact,
                                              mnist: MnistSplit) -> None:
    ref = ModelRef(champion.name, champion.version)
    group = f"{GROUP}-all"
    probabilities, predicted = [], []
    for start in range(0, len(mnist), 1000):
        rows = list(range(start, min(start + 1000, len(mnist))))
        scored = backend.write_batch(image_batch(mnist, rows, f"{RUN}-all-{start}"), ref, group)
        assert scored.model == ref
        probabilities.append(scored.probabilities)
        predicted.append(scored.predicted)
    expected = champion.forward(mnist.images)
    got = np.concatenate(probabilities)
    agreement = float(np.mean(np.concatenate(predicted) == predict(expected)))
    assert agreement >= 0.999, agreement
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert backend.stored_offsets(group, "mnist.images") == {0: len(mnist)}


@pytest.mark.parametrize(
    ("sizes", "activations"),
    [((784, 64, 32, 10), ("relu", "tanh", "softmax")), ((784, 10), ("identity",))],
)
def test_other_dense_stacks(backend: OracleBackend, mnist: MnistSplit, sizes: tuple[int, ...],
                            activations: tuple[str, ...]) -> None:
    artifact = random_artifact(f"deep-{RUN}-{len(sizes)}", 1, sizes, activations, seed=len(sizes))
    backend.install_model(artifact)
    got = backend.score(mnist.images[:500], ModelRef(artifact.name, 1))
    np.testing.assert_allclose(got, artifact.forward(mnist.images[:500]), atol=1e-4, rtol=1e-5)


def test_duplicates_and_replays_are_stored_once(backend: OracleBackend, champion: ModelArtifact,
                                                mnist: MnistSplit) -> None:
    ref = ModelRef(champion.name, champion.version)
    prefix = f"{RUN}-dup"
    batch = image_batch(mnist, [0, 1, 1, 2, 0], f"{prefix}-1", prefix=prefix)
    first = backend.write_batch(batch, ref, GROUP)
    assert len(first.image_ids) == 3
    replay = backend.write_batch(image_batch(mnist, [0, 1, 2], f"{prefix}-2", prefix=prefix), ref,
                                 GROUP)
    assert np.array_equal(replay.probabilities, first.probabilities)
    # scored_at is this pass's time on every engine (backends/base.py), not the stored one
    assert len(set(replay.scored_at.tolist())) == 1 and (replay.scored_at >= first.scored_at).all()
    like = f"{prefix}-%"
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_images WHERE image_id LIKE :1", like) == 3
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_predictions WHERE image_id LIKE :1",
                 like) == 3
    # a replay rewrites nothing: the rows still name the batch that first delivered them
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_images WHERE image_id LIKE :1 AND batch_id = :2",
                  like, f"{prefix}-1") == 3
    # the batch's ids lived in the temporary table for one transaction only
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_batch_ids") == 0


def test_plsql_timing_counts_the_phases(oracle_url: str, champion: ModelArtifact,
                                        mnist: MnistSplit) -> None:
    separator = "&" if "?" in oracle_url else "?"
    timed = open_backend(f"{oracle_url}{separator}plsql_timing=1")
    assert isinstance(timed, OracleBackend)
    with timed:
        ref = ModelRef(champion.name, champion.version)
        timed.write_batch(image_batch(mnist, list(range(300, 340)), f"{RUN}-timed"), ref, GROUP)
        with timed._connection().cursor() as cursor:
            text = str(cursor.callfunc("mnist_scorer.timings", oracledb.DB_TYPE_VARCHAR))
    counters = dict(part.split("=") for part in text.split())
    assert counters["batches"] == "1" and counters["images"] == "40"
    assert set(counters) == {"batches", "images", "load", "fetch", "decode", "gemm", "activate", "store"}


def test_model_switch_reloads_once(backend: OracleBackend, champion: ModelArtifact,
                                   mnist: MnistSplit) -> None:
    v2 = random_artifact(champion.name, 2, (784, 100, 10), ("sigmoid", "softmax"), seed=2)
    backend.install_model(v2)
    assert backend.installed_versions(champion.name) == [1, 2]
    v1_ref, v2_ref = ModelRef(champion.name, 1), ModelRef(champion.name, 2)
    backend.write_batch(image_batch(mnist, [10, 11], f"{RUN}-sw-1"), v1_ref, GROUP)
    loads = cache_loads(backend)
    scored = backend.write_batch(image_batch(mnist, [12, 13], f"{RUN}-sw-2"), v2_ref, GROUP)
    assert scored.model == v2_ref
    np.testing.assert_allclose(scored.probabilities, v2.forward(mnist.images[12:14]), atol=1e-4)
    assert cache_loads(backend) == loads + 1  # v2 read once
    backend.write_batch(image_batch(mnist, [14], f"{RUN}-sw-3"), v2_ref, GROUP)
    backend.write_batch(image_batch(mnist, [15], f"{RUN}-sw-4"), v1_ref, GROUP)
    assert cache_loads(backend) == loads + 1  # both versions stay cached
    assert scalar(backend, "SELECT model_version FROM active_models WHERE model_name = :1",
                 champion.name) == 1


def test_the_champion_survives_a_stream_of_shadow_versions(backend: OracleBackend, champion: ModelArtifact,
                                                          mnist: MnistSplit) -> None:
    """The model cache (4 versions) evicts the least recently used one, never every model."""
    champion_ref = ModelRef(champion.name, champion.version)
    backend.write_batch(image_batch(mnist, [30], f"{RUN}-lru-0"), champion_ref, GROUP)
    for version in range(3, 9):
        backend.install_model(random_artifact(champion.name, version, (784, 16, 10), ("relu", "softmax"),
                                              seed=version))
        shadow = ModelRef(champion.name, version, "shadow")
        backend.write_batch(image_batch(mnist, [30 + version], f"{RUN}-lru-{version}"), shadow, GROUP)
        loads = cache_loads(backend)
        backend.write_batch(image_batch(mnist, [50 + version], f"{RUN}-lru-c{version}"), champion_ref, GROUP)
        assert cache_loads(backend) == loads  # the champion was still cached


def test_load_model_round_trip(backend: OracleBackend, champion: ModelArtifact) -> None:
    loaded = backend.load_model(ModelRef(champion.name, champion.version))
    assert loaded.sha256 == champion.sha256
    assert loaded.activations == champion.activations


def test_score_stores_nothing(backend: OracleBackend, champion: ModelArtifact,
                              mnist: MnistSplit) -> None:
    before = scalar(backend, "SELECT COUNT(*) FROM mnist_images")
    got = backend.score(mnist.images[:50], ModelRef(champion.name, champion.version))
    np.testing.assert_allclose(got, champion.forward(mnist.images[:50]), atol=1e-4)
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_images") == before


def test_bad_row_is_a_data_error_naming_the_code(backend: OracleBackend, champion: ModelArtifact,
                                                 mnist: MnistSplit) -> None:
    batch = image_batch(mnist, [20, 21], f"{RUN}-bad")
    batch.image_ids[1] = "x" * 200  # longer than VARCHAR2(128 BYTE)
    with pytest.raises(BackendDataError, match="ORA-12899"):
        backend.write_batch(batch, ModelRef(champion.name, champion.version), GROUP)
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_images WHERE batch_id = :1",
                 f"{RUN}-bad") == 0


def test_purge_runs_and_keeps_recent_rows(backend: OracleBackend, champion: ModelArtifact,
                                         mnist: MnistSplit) -> None:
    ref = ModelRef(champion.name, champion.version)
    backend.write_batch(image_batch(mnist, [400, 401], f"{RUN}-purge"), ref, GROUP)
    # ten years: nothing of this (or any recent) run is that old, so the shared database keeps its rows
    assert backend.purge(10 * 365 * 86_400, rows_per_commit=2) == PurgeReport(0, 0)
    assert scalar(backend, "SELECT COUNT(*) FROM mnist_images WHERE batch_id = :1", f"{RUN}-purge") == 2


@pytest.mark.skipif(os.environ.get("STREAMSCORE_TEST_ORACLE_ONNX") != "1",
                    reason="set STREAMSCORE_TEST_ORACLE_ONNX=1 for a 23ai user with CREATE MINING MODEL")
def test_onnx_scoring_agrees_with_the_reference(oracle_url: str, champion: ModelArtifact,
                                                mnist: MnistSplit) -> None:
    pytest.importorskip("onnx", reason="pip install 'streamscore[onnx]'")
    separator = "&" if "?" in oracle_url else "?"
    with open_backend(f"{oracle_url}{separator}scorer=onnx") as onnx_backend:
        ref = ModelRef(champion.name, champion.version, "shadow")
        rows = list(range(1000, 3000))
        scored = onnx_backend.write_batch(image_batch(mnist, rows, f"{RUN}-onnx"), ref, GROUP)
    reference = champion.forward(mnist.images[rows])
    assert float(np.mean(scored.predicted == predict(reference))) >= 0.999
    assert float(np.abs(scored.probabilities - reference).max()) <= 1e-4


def test_driver_is_thin() -> None:
    assert oracledb.is_thin_mode()
