"""The Backend contract (streamscore/backends/base.py), run over every reachable engine."""

from __future__ import annotations

import numpy as np
import pytest
from contract_hooks import SEVEN, Scope, count, forbid_label, make_batch, mnist_test, rows_with_label

from kinetica_fixtures import ENV as KINETICA_ENV
from kinetica_fixtures import kinetica_test_url
from oracle_fixtures import ENV as ORACLE_ENV
from oracle_fixtures import oracle_test_url
from streamscore.backends import Backend, open_backend
from streamscore.errors import BackendDataError, BackendError, BackendUnavailable
from streamscore.model.reference import predict


def test_init_schema_twice_is_harmless(backend: Backend, scope: Scope) -> None:
    backend.init_schema()
    backend.install_model(scope.model(1))
    backend.init_schema()
    scored = backend.write_batch(make_batch(scope, range(3), "b1"), scope.ref(1), scope.group)
    assert len(scored.image_ids) == 3


def test_duplicate_ids_in_a_batch_are_stored_once(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    batch = make_batch(scope, [0, 1, 2, 1, 0], "dups")
    scored = backend.write_batch(batch, scope.ref(1), scope.group)
    assert sorted(scored.image_ids) == sorted({scope.image_id(i) for i in (0, 1, 2)})
    assert count(backend, "images", scope) == 3
    assert count(backend, "predictions", scope) == 3


@pytest.mark.parametrize("version", [1, 2, 3, 4])  # v3 the dense net, v4 the CNN (docs/models.md)
def test_scores_agree_with_the_numpy_reference(backend: Backend, scope: Scope, version: int) -> None:
    model = scope.model(version)
    try:
        backend.install_model(model)
    except BackendError as exc:
        if exc.reason != "unsupported-layers":
            raise
        pytest.skip(f"{backend.name} refuses v{version} ({exc.reason}): see test_a_scorer_without_conv_refuses_a_cnn")
    split = mnist_test()
    predicted, probabilities = [], []
    for start in range(0, len(split), 2500):
        batch = make_batch(scope, range(start, min(start + 2500, len(split))), f"all-{start}")
        scored = backend.write_batch(batch, scope.ref(version), scope.group)
        assert scored.image_ids == sorted(batch.image_ids)  # ids are zero-padded: byte order = row order
        predicted.append(scored.predicted)
        probabilities.append(scored.probabilities)
    reference = model.forward(split.images)
    got = np.concatenate(probabilities)
    assert got.shape == reference.shape
    assert (np.concatenate(predicted) == predict(reference)).mean() >= 0.999
    assert np.abs(got - reference).max() <= 1e-4
    # score() computes the same in the database and stores nothing
    scored_only = backend.score(split.images[:300], scope.ref(version))
    assert np.abs(scored_only - reference[:300]).max() <= 1e-4


def test_score_stores_nothing(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(2))
    probabilities = backend.score(mnist_test().images[:20], scope.ref(2))
    assert probabilities.shape == (20, 10)
    assert count(backend, "images", scope) == 0
    assert count(backend, "predictions", scope) == 0
    assert backend.score(mnist_test().images[:0], scope.ref(2)).shape == (0, 10)


def test_offsets_commit_with_the_rows(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    others = rows_with_label(SEVEN, 6, other=True)
    with forbid_label(backend, SEVEN):
        backend.write_batch(make_batch(scope, others[:4], "b1"), scope.ref(1), scope.group)
        assert backend.stored_offsets(scope.group, scope.topic) == {0: 104}
        bad = make_batch(scope, [*others[4:], rows_with_label(SEVEN, 1)[0]], "bad")
        bad.offsets = {(scope.topic, 0): 500}
        with pytest.raises(BackendDataError):
            backend.write_batch(bad, scope.ref(1), scope.group)
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 104}
    assert count(backend, "images", scope) == 4
    assert count(backend, "predictions", scope) == 4


def test_a_failed_transaction_leaves_nothing_behind(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    good = rows_with_label(SEVEN, 5, other=True)
    with forbid_label(backend, SEVEN):
        batch = make_batch(scope, [*good, rows_with_label(SEVEN, 1)[0]], "mixed")
        with pytest.raises(BackendDataError) as failure:
            backend.write_batch(batch, scope.ref(1), scope.group)
        assert failure.value.reason == "db-rejected"
        assert count(backend, "images", scope) == 0
        assert count(backend, "predictions", scope) == 0
        assert backend.stored_offsets(scope.group, scope.topic) == {}
        # the connection is usable again: the good rows go through on their own
        scored = backend.write_batch(make_batch(scope, good, "good"), scope.ref(1), scope.group)
    assert len(scored.image_ids) == len(good)
    assert count(backend, "images", scope) == len(good)


def test_models_install_switch_and_round_trip(backend: Backend, scope: Scope) -> None:
    first, second = scope.model(1), scope.model(2)
    backend.install_model(second)
    backend.install_model(first)
    backend.install_model(first)  # idempotent
    assert backend.installed_versions(scope.model_name) == [1, 2]
    assert backend.installed_versions(f"absent_{scope.tag}") == []
    for artifact in (first, second):
        loaded = backend.load_model(scope.ref(artifact.version))
        assert loaded.sha256 == artifact.sha256
        assert loaded.activations == artifact.activations
    before = backend.write_batch(make_batch(scope, range(0, 5), "v1"), scope.ref(1), scope.group)
    after = backend.write_batch(make_batch(scope, range(5, 10), "v2"), scope.ref(2), scope.group)
    assert before.model.version == 1 and after.model.version == 2
    split = mnist_test()
    assert np.abs(before.probabilities - first.forward(split.images[0:5])).max() <= 1e-4
    assert np.abs(after.probabilities - second.forward(split.images[5:10])).max() <= 1e-4
    # the same images scored by the next version get predictions of their own
    again = backend.write_batch(make_batch(scope, range(0, 5), "v1-again"), scope.ref(2), scope.group)
    assert np.abs(again.probabilities - second.forward(split.images[0:5])).max() <= 1e-4
    assert count(backend, "predictions", scope) == 15


def test_replaying_a_batch_adds_nothing_and_returns_the_same(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(2))
    batch = make_batch(scope, range(8), "replayed")
    first = backend.write_batch(batch, scope.ref(2), scope.group)
    second = backend.write_batch(batch, scope.ref(2), scope.group)
    assert second.image_ids == first.image_ids
    assert np.array_equal(second.predicted, first.predicted)
    assert np.array_equal(second.probabilities, first.probabilities)
    assert count(backend, "images", scope) == 8
    assert count(backend, "predictions", scope) == 8
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 108}


def test_store_offsets_round_trip(backend: Backend, scope: Scope) -> None:
    assert backend.stored_offsets(scope.group, scope.topic) == {}
    backend.store_offsets(scope.group, {(scope.topic, 0): 5, (scope.topic, 1): 7})
    backend.store_offsets(scope.group, {(scope.topic, 1): 9})
    backend.store_offsets(f"other-{scope.tag}", {(scope.topic, 0): 1})
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 5, 1: 9}
    assert backend.stored_offsets(scope.group, f"absent-{scope.tag}") == {}


UNREACHABLE = [
    pytest.param("postgresql://streamscore:secret@127.0.0.1:1/streamscore?connect_timeout=3", id="postgres",
                 marks=pytest.mark.postgres),
    pytest.param("oracle://streamscore:secret@127.0.0.1:1/FREEPDB1?tcp_connect_timeout=3", id="oracle",
                 marks=[pytest.mark.oracle,
                        pytest.mark.skipif(oracle_test_url() is None, reason=f"{ORACLE_ENV} unset")]),
    pytest.param("kinetica://streamscore:secret@127.0.0.1:1", id="kinetica",
                 marks=[pytest.mark.kinetica,
                        pytest.mark.skipif(kinetica_test_url() is None, reason=f"{KINETICA_ENV} unset")]),
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_an_unreachable_server_is_retriable(url: str) -> None:
    backend = open_backend(url)
    with pytest.raises(BackendUnavailable) as failure:
        backend.connect()
    assert failure.value.retriable
    assert "secret" not in str(failure.value)
    backend.close()


def test_a_scorer_without_conv_refuses_a_cnn(backend: Backend, scope: Scope) -> None:
    """An engine that cannot run conv layers refuses the CNN at install and keeps serving v2."""
    backend.install_model(scope.model(2))
    try:
        backend.install_model(scope.model(4))
    except BackendError as exc:
        assert exc.reason == "unsupported-layers"
        assert "conv2d" in exc.message
        assert backend.installed_versions(scope.model_name) == [2]
    else:
        assert backend.installed_versions(scope.model_name) == [2, 4]
    scored = backend.write_batch(make_batch(scope, range(3), "after"), scope.ref(2), scope.group)
    assert len(scored.image_ids) == 3
