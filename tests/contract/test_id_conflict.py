"""Image ids are unique (streamscore/backends/base.py, issue 11 item 5), on every reachable engine.

An id already stored with different content (pixels or label) is not stored, scored or
overwritten: ``write_batch`` lists it in ``ScoredBatch.conflicts`` and leaves it out of
``image_ids``/``predicted``/``probabilities``; a replay with the same content is absorbed.
"""

from __future__ import annotations

import numpy as np
from contract_hooks import Scope, count, make_batch, mnist_test, stored_labels

from streamscore.backends import Backend, ImageBatch


def _reused_ids_batch(scope: Scope, batch_id: str) -> ImageBatch:
    """Ids 0–3: (a) 0 replayed as stored, (b) 1 with other pixels, (c) 2 with another label, (d) 3 new."""
    batch = make_batch(scope, [0, 1, 2, 3], batch_id)
    split = mnist_test()
    batch.pixels = batch.pixels.copy()
    batch.labels = batch.labels.copy()
    batch.pixels[1] = split.images[10]  # another image; the label stays the stored one
    assert not np.array_equal(batch.pixels[1], split.images[1])
    batch.labels[2] = (int(split.labels[2]) + 1) % 10  # the stored pixels under another label
    return batch


def test_a_reused_id_with_other_content_is_a_conflict(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    first = backend.write_batch(make_batch(scope, [0, 1, 2], f"{scope.tag}-first"), scope.ref(1), scope.group)
    assert first.conflicts == []
    replay, other_pixels, other_label, new = (scope.image_id(i) for i in range(4))

    scored = backend.write_batch(_reused_ids_batch(scope, f"{scope.tag}-second"), scope.ref(1), scope.group)

    assert sorted(scored.conflicts) == [other_pixels, other_label]
    assert sorted(scored.image_ids) == [replay, new]
    assert scored.predicted.shape == (2,)
    assert scored.probabilities.shape == (2, 10)
    assert scored.scored_at.shape == (2,)
    reference = scope.model(1).forward(mnist_test().images[[0, 3]])
    by_id = dict(zip(scored.image_ids, scored.probabilities, strict=True))
    assert np.abs(np.stack([by_id[replay], by_id[new]]) - reference).max() <= 1e-4
    # nothing of the conflicting rows was stored; the batch's offsets were
    assert count(backend, "images", scope) == 4
    assert count(backend, "predictions", scope) == 4
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 104}
    labels = mnist_test().labels
    assert stored_labels(backend, scope)[other_label] == int(labels[2])
    # the stored rows are the first ones: their first content is a replay, not a conflict
    again = backend.write_batch(make_batch(scope, [0, 1, 2], f"{scope.tag}-third"), scope.ref(1), scope.group)
    assert again.conflicts == []
    assert sorted(again.image_ids) == [replay, other_pixels, other_label]
    assert count(backend, "predictions", scope) == 4


def test_a_batch_of_conflicts_only_scores_nothing_and_stores_its_offsets(backend: Backend, scope: Scope) -> None:
    backend.install_model(scope.model(1))
    backend.write_batch(make_batch(scope, [0, 1], f"{scope.tag}-first"), scope.ref(1), scope.group)
    clash = make_batch(scope, [0, 1], f"{scope.tag}-clash")
    clash.labels = (clash.labels + 1) % 10
    clash.offsets = {(scope.topic, 0): 300}

    scored = backend.write_batch(clash, scope.ref(1), scope.group)

    assert sorted(scored.conflicts) == [scope.image_id(0), scope.image_id(1)]
    assert scored.image_ids == []
    assert scored.probabilities.shape == (0, 10)
    assert count(backend, "predictions", scope) == 2
    assert backend.stored_offsets(scope.group, scope.topic) == {0: 300}
