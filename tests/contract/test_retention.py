"""Retention (capability "purge"): old images and their predictions go, newer rows, offsets and models stay."""

from __future__ import annotations

import pytest
from contract_hooks import Scope, backdate_images, count, make_batch

from streamscore.backends import Backend
from streamscore.errors import ConfigError

DAY_S = 86_400


def test_purge_deletes_only_rows_stored_before_the_cut(backend: Backend, scope: Scope) -> None:
    if "purge" not in backend.implements:
        pytest.skip(f"{backend.name} does not implement 'purge' (see docs/{backend.name}.md)")
    backend.install_model(scope.model(1))
    old = make_batch(scope, [0, 1, 2], "b-old")
    backend.write_batch(old, scope.ref(1), scope.group)
    backend.write_batch(make_batch(scope, [3, 4], "b-new"), scope.ref(1), scope.group)
    offsets_before = backend.stored_offsets(scope.group, scope.topic)
    backdate_images(backend, old.image_ids, 2 * DAY_S)

    report = backend.purge(DAY_S)

    assert report.images >= 3 and report.predictions >= 3  # engines sharing a schema may purge others' too
    assert count(backend, "images", scope) == 2
    assert count(backend, "predictions", scope) == 2
    assert backend.stored_offsets(scope.group, scope.topic) == offsets_before
    assert backend.installed_versions(scope.model_name) == [1]
    assert count(backend, "images", scope) == 2


def test_purge_with_age_zero_deletes_everything_stored_so_far(backend: Backend, scope: Scope) -> None:
    if "purge" not in backend.implements:
        pytest.skip(f"{backend.name} does not implement 'purge' (see docs/{backend.name}.md)")
    backend.install_model(scope.model(1))
    backend.write_batch(make_batch(scope, [0, 1], "b-1"), scope.ref(1), scope.group)
    backdate_images(backend, [scope.image_id(0), scope.image_id(1)], 1)  # strictly before "now"

    backend.purge(0)

    assert count(backend, "images", scope) == 0 and count(backend, "predictions", scope) == 0
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 102}


def test_a_negative_age_is_refused(backend: Backend) -> None:
    if "purge" not in backend.implements:
        with pytest.raises(ConfigError, match="does not implement 'purge'"):
            backend.purge(1.0)
        return
    with pytest.raises(ConfigError, match="0 seconds or more"):
        backend.purge(-1.0)
