"""The behaviours in which the engines used to differ (issue 10), pinned on every reachable engine.

Each test names the rule of streamscore/backends/base.py it checks; the same assertion runs on
DuckDB, PostgreSQL, Oracle and Kinetica (the last two when their env vars are set).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from contract_hooks import Scope, count, make_batch, mnist_test, stored_roles

from streamscore.backends import Backend, BackendURL, ModelRef, open_backend, option_defaults, resolve_backend
from streamscore.backends.base import MAX_MODEL_NAME_BYTES
from streamscore.errors import ArtifactError, BackendUnavailable, ConfigError
from streamscore.shared.config import Settings
from streamscore.shared.messages import now_ms

#: one URL per engine that constructs without a server (constructors never connect)
OFFLINE_URLS = {
    "duckdb": "duckdb:///:memory:",
    "postgresql": "postgresql://streamscore@127.0.0.1:5432/streamscore",
    "oracle": "oracle://streamscore@127.0.0.1:1521/FREEPDB1",
    "kinetica": "kinetica://127.0.0.1:9191",
}


def test_scoring_a_version_that_is_not_installed(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    absent = scope.ref(9)
    for attempt in (
        lambda: backend.write_batch(make_batch(scope, range(3), "absent"), absent, scope.group),
        lambda: backend.score(mnist_test().images[:3], absent),
        lambda: backend.load_model(absent),
    ):
        with pytest.raises(ArtifactError) as failure:
            attempt()
        assert failure.value.reason == "not-installed"
        assert str(absent) in failure.value.message
    if backend.transactional:
        assert count(backend, "images", scope) == 0
        assert backend.stored_offsets(scope.group, scope.topic) == {}
    # the connection is usable again
    assert len(backend.write_batch(make_batch(scope, range(3), "ok"), scope.ref(1), scope.group).image_ids) == 3


def test_reinstalling_a_version_with_other_weights_is_refused(backend: Backend, scope: Scope) -> None:
    first = scope.model(1)
    backend.install_model(first)
    backend.install_model(first)  # the same weights again: a no-op
    impostor = scope.model(2).with_version(1)
    assert impostor.sha256 != first.sha256
    with pytest.raises(ArtifactError) as failure:
        backend.install_model(impostor)
    assert failure.value.reason == "version-conflict"
    assert backend.installed_versions(scope.model_name) == [1]
    assert backend.load_model(scope.ref(1)).sha256 == first.sha256


def test_stored_offsets_never_move_backwards(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    backend.store_offsets(scope.group, {(scope.topic, 0): 500, (scope.topic, 1): 5})
    backend.store_offsets(scope.group, {(scope.topic, 0): 10, (scope.topic, 1): 6})
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 500, 1: 6}
    # a late replay of an old batch (next offset 104) keeps the stored 500
    backend.write_batch(make_batch(scope, range(4), "late"), scope.ref(1), scope.group)
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 500, 1: 6}


@pytest.mark.parametrize("scheme", sorted(OFFLINE_URLS))
def test_unknown_url_options_are_refused_with_the_valid_ones(scheme: str) -> None:
    url = OFFLINE_URLS[scheme]
    backend_class = resolve_backend(scheme)
    with pytest.raises(ConfigError) as failure:
        open_backend(f"{url}?no_such_option=1")
    assert "no_such_option" in failure.value.message
    assert all(option in failure.value.message for option in list(backend_class.url_options)[:3])
    # constructors take no catch-all keywords: a stray keyword is a TypeError, not ignored
    with pytest.raises(TypeError):
        backend_class(BackendURL.parse(url), scorer="sql")  # type: ignore[call-arg]


@pytest.mark.parametrize("scheme", sorted(OFFLINE_URLS))
def test_option_defaults_apply_only_to_the_engine_they_name(scheme: str) -> None:
    """STREAMSCORE_DUCKDB_SCORER reaches DuckDB only; Oracle's own ``scorer`` never receives udf/sql."""
    settings = Settings(duckdb_scorer="sql")
    backend = open_backend(OFFLINE_URLS[scheme], defaults=option_defaults(settings))
    assert ("scorer" in backend.url.options) == (scheme == "duckdb")
    if scheme == "duckdb":
        assert backend.scorer == "sql"  # type: ignore[attr-defined]
        assert open_backend("duckdb:///:memory:?scorer=udf",
                            defaults=option_defaults(settings)).scorer == "udf"  # type: ignore[attr-defined]


def test_predictions_are_stored_under_the_model_role(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    batch = make_batch(scope, range(3), "roles")
    champion = backend.write_batch(batch, scope.ref(1), scope.group)
    shadow = backend.write_batch(batch, ModelRef(scope.model_name, 1, "shadow"), scope.group)
    assert (champion.model.role, shadow.model.role) == ("champion", "shadow")
    assert np.array_equal(champion.predicted, shadow.predicted)
    assert stored_roles(backend, scope) == sorted(
        (image_id, role) for image_id in batch.image_ids for role in ("champion", "shadow")
    )
    with pytest.raises(ConfigError):
        ModelRef(scope.model_name, 1, "referee")


def test_a_replay_reports_the_time_of_this_pass(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    batch = make_batch(scope, range(4), "timed")
    first = backend.write_batch(batch, scope.ref(1), scope.group)
    while now_ms() <= int(first.scored_at.max()):  # the clock must tick once (at most 1 ms)
        pass
    started = now_ms()
    second = backend.write_batch(batch, scope.ref(1), scope.group)
    assert (second.scored_at >= started).all() and (first.scored_at < started).all()
    assert len(set(second.scored_at.tolist())) == 1  # one time for the whole pass
    assert np.array_equal(second.predicted, first.predicted)


def test_model_names_longer_than_the_limit_are_refused_at_install(backend: Backend, scope: Scope) -> None:
    longest = f"{scope.model_name}_".ljust(MAX_MODEL_NAME_BYTES, "n")
    too_long = longest + "n"
    with pytest.raises(ArtifactError) as failure:
        backend.install_model(dataclasses.replace(scope.model(1), name=too_long))
    assert failure.value.reason == "bad-name" and str(MAX_MODEL_NAME_BYTES) in failure.value.message
    assert backend.installed_versions(too_long) == []
    backend.install_model(dataclasses.replace(scope.model(1), name=longest))
    assert backend.load_model(ModelRef(longest, 1)).name == longest


def test_missing_predictions_are_retriable() -> None:
    from streamscore.backends.checks import predictions_missing

    error = predictions_missing(["a", "b"], 5, ModelRef("mlp", 2, "shadow"))
    assert isinstance(error, BackendUnavailable) and error.retriable
    assert error.reason == "predictions-missing" and "'a'" in error.message and "shadow" in error.message
