"""Several versions per batch (Backend.write_set, issue 12): champion + shadow and an ensemble of two,
scored in one call; served probabilities of an ensemble are the mean of the members' reference ones.

DuckDB and PostgreSQL do it in one transaction, Kinetica in ordered upserts ("multi-version"; here on
its stand-in); Oracle takes the base fallback (one write per version), which serves champion +
shadows and refuses ensembles.
"""

from __future__ import annotations

import numpy as np
import pytest
from contract_hooks import Scope, count, make_batch, mnist_test, stored_roles

from streamscore.backends import Backend, ModelRef
from streamscore.backends.records import ServingSet
from streamscore.errors import ConfigError


def test_champion_and_shadow_are_scored_together(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    backend.install_model(scope.model(2))
    batch = make_batch(scope, range(5), "shadowed")
    serving = ServingSet((scope.ref(1),), (ModelRef(scope.model_name, 2, "shadow"),))
    served, shadow = backend.write_set(batch, serving, scope.group)
    assert (served.model, shadow.model) == (scope.ref(1), ModelRef(scope.model_name, 2, "shadow"))
    assert served.served and not shadow.served
    assert sorted(served.image_ids) == sorted(shadow.image_ids) == sorted(batch.image_ids)
    assert stored_roles(backend, scope) == sorted((i, r) for i in batch.image_ids for r in ("champion", "shadow"))
    assert backend.stored_offsets(scope.group, scope.topic) == {p: o for (_, p), o in batch.offsets.items()}
    again = backend.write_set(batch, serving, scope.group)  # a replay is absorbed
    assert len(again) == 2 and count(backend, "predictions", scope) == 10


def test_an_ensemble_serves_the_mean_of_its_members(backend: Backend, scope: Scope) -> None:
    v1, v2 = scope.model(1), scope.model(2)
    backend.install_model(v1)
    backend.install_model(v2)
    rows = list(range(12))
    batch = make_batch(scope, rows, "ensemble")
    members = (ModelRef(scope.model_name, 1, "member"), ModelRef(scope.model_name, 2, "member"))
    serving = ServingSet(members)
    if "multi-version" not in backend.implements:
        with pytest.raises(ConfigError):
            backend.write_set(batch, serving, scope.group)
        return
    (served,) = backend.write_set(batch, serving, scope.group)
    assert served.model == ModelRef(scope.model_name, 2, "ensemble") and served.members == (1, 2)
    pixels = mnist_test().images[rows]
    expected = (v1.forward(pixels) + v2.forward(pixels)) / 2
    order = [batch.image_ids.index(i) for i in served.image_ids]
    np.testing.assert_allclose(served.probabilities, expected[order], atol=1e-4)
    assert np.array_equal(served.predicted, expected[order].argmax(axis=1))
    assert stored_roles(backend, scope) == sorted(
        (i, r) for i in batch.image_ids for r in ("ensemble", "member", "member"))


def test_a_long_run_of_versions_keeps_duckdb_weights_bounded(tmp_path: object) -> None:
    """Issue 12 item 5 (in part): DuckDB's in-process weights cache keeps the recent versions only."""
    import pathlib

    from contract_hooks import Scope

    from streamscore.backends import open_backend
    from streamscore.backends.model_cache import MAX_CACHED_VERSIONS as MODEL_CACHE

    scope = Scope("cache")
    backend = open_backend(f"duckdb:///{pathlib.Path(str(tmp_path)) / 'cache.db'}")
    with backend:
        backend.init_schema()
        pixels = mnist_test().images[:2]
        for version in range(1, MODEL_CACHE + 5):
            backend.install_model(scope.model(1).with_version(version))
            backend.score(pixels, scope.ref(version))
        assert len(backend._models) == MODEL_CACHE  # type: ignore[attr-defined]
        assert (scope.model_name, MODEL_CACHE + 4) in backend.cached_models()


def test_the_applied_lifecycle_is_kept_and_never_lowered(backend: Backend, scope: Scope) -> None:
    if "lifecycle" not in backend.implements:
        pytest.skip(f"{backend.name} does not keep the lifecycle")
    assert backend.stored_lifecycle(scope.model_name) is None
    backend.store_lifecycle(scope.model_name, 5, '{"r": 5}')
    backend.store_lifecycle(scope.model_name, 3, '{"r": 3}')  # a late writer of an older snapshot
    assert backend.stored_lifecycle(scope.model_name) == (5, '{"r": 5}')
    backend.store_lifecycle(scope.model_name, 9, '{"r": 9}')
    assert backend.stored_lifecycle(scope.model_name) == (9, '{"r": 9}')
