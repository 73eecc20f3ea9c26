"""Model lifecycle on the embedded broker, with DuckDB and with PostgreSQL (issue 12): a shadow phase,
then a promotion and a rollback mid-stream, then an ensemble of two versions.

One scorer runs throughout; each phase's images are produced after its lifecycle command was
published, and the checks read the database, where every prediction row names its batch: every
batch scored by one whole serving set, exactly one served row per image, nothing lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from test_pipeline import running, wait_until

from postgres_fixtures import postgres_schema_url
from streamscore.backends import open_backend
from streamscore.consumers.prediction_reader import read_predictions
from streamscore.consumers.scorer import Scorer
from streamscore.models import bundled_model
from streamscore.producers.images import produce_images
from streamscore.producers.lifecycle import publish_with_role, run_command
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics
from streamscore.shared.mnist import MnistSplit
from support.databases import postgres_connect

pytestmark = pytest.mark.slow

PHASE = 100


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'lifecycle.duckdb'}"
    else:
        with postgres_schema_url() as url:
            yield url


def rows(url: str) -> list[tuple[str, int, str, str, list[float]]]:
    """(image_id, version, role, batch_id, probabilities) of every stored prediction."""
    query = "SELECT image_id, model_version, role, batch_id, probabilities FROM predictions"
    if url.startswith("duckdb"):
        import duckdb

        with duckdb.connect(url.removeprefix("duckdb:///"), read_only=True) as con:
            found = con.execute(query).fetchall()
    else:
        with postgres_connect(url) as conn:
            found = conn.execute(query).fetchall()
    return [(str(i), int(v), str(r), str(b), list(p)) for i, v, r, b, p in found]


def phase(split: MnistSplit, number: int) -> MnistSplit:
    start = number * PHASE

    class Offset(MnistSplit):
        def image_id(self, index: int) -> str:
            return super().image_id(index + start)

    return Offset(split.split, split.images[start:start + PHASE], split.labels[start:start + PHASE])


def test_shadow_promote_rollback_and_ensemble(make_settings: Callable[..., Settings], backend_url: str,
                                              test_split: MnistSplit) -> None:
    settings = make_settings(backend=backend_url, batch_size=50, linger_ms=20)
    ensure_topics(settings)
    v1, v2 = bundled_model(1), bundled_model(2)
    publish_with_role(settings, v1, "champion")
    publish_with_role(settings, v2, "shadow")
    scorer = Scorer(settings, open_backend(settings.backend_url))
    served: Callable[[], int] = lambda: scorer.stats.scored  # noqa: E731 - served images only
    with running(scorer) as errors:
        assert scorer.ready.wait(30), "consumer did not join its group"
        produce_images(settings, phase(test_split, 0), limit=PHASE)  # 0: v1 serves, v2 shadows
        wait_until(lambda: served() >= PHASE, 60, "the shadow phase")
        run_command(settings, "mlp", lambda s: s.promote(2))  # 1: v2 serves
        wait_until(lambda: scorer.stats.model_version == 2, 30, "the promotion")
        produce_images(settings, phase(test_split, 1), limit=PHASE)
        wait_until(lambda: served() >= 2 * PHASE, 60, "the promoted phase")
        run_command(settings, "mlp", lambda s: s.rollback("test"))  # 2: v1 again
        wait_until(lambda: scorer.stats.model_version == 1, 30, "the rollback")
        produce_images(settings, phase(test_split, 2), limit=PHASE)
        wait_until(lambda: served() >= 3 * PHASE, 60, "the rolled-back phase")
        publish_with_role(settings, v2.with_version(3), "ensemble")  # 3: mean of v1 and v3 (= v2's weights)
        wait_until(lambda: scorer.stats.model_version == 3, 30, "the ensemble")
        produce_images(settings, phase(test_split, 3), limit=PHASE)
        wait_until(lambda: served() >= 4 * PHASE, 60, "the ensemble phase")
    assert not errors

    stored = rows(settings.backend_url)
    sets: dict[str, set[tuple[int, str]]] = {}
    for _, version, role, batch_id, _ in stored:
        sets.setdefault(batch_id, set()).add((version, role))
    allowed = [{(1, "champion"), (2, "shadow")}, {(2, "champion")}, {(1, "champion")},
               {(1, "member"), (3, "member"), (3, "ensemble")}]
    assert all(s in allowed for s in sets.values()), f"a batch mixed serving sets: {sets}"
    answers = [(i, v, r) for i, v, r, _, _ in stored if r in ("champion", "ensemble")]
    ids = [i for i, _, _ in answers]
    assert len(ids) == len(set(ids)) == 4 * PHASE, "exactly one served row per image"
    by_phase = [{(v, r) for i, v, r in answers if int(i.split("-")[1]) // PHASE == n} for n in range(4)]
    assert by_phase == [{(1, "champion")}, {(2, "champion")}, {(1, "champion")}, {(3, "ensemble")}]
    shadows = sorted(i for i, v, r, _, _ in stored if r == "shadow")
    assert shadows == sorted(test_split.image_id(n) for n in range(PHASE)), "a shadow row per image of phase 0"

    ensemble = {i: p for i, v, r, _, p in stored if r == "ensemble"}
    images = test_split.images[3 * PHASE:4 * PHASE]
    expected = (v1.forward(images) + v2.forward(images)) / 2
    got = np.asarray([ensemble[test_split.image_id(3 * PHASE + n)] for n in range(PHASE)], np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-4)

    on_topic = list(read_predictions(settings, expect=4 * PHASE).predictions.values())
    assert sum(1 for p in on_topic if p.role in ("champion", "ensemble")) == 4 * PHASE
    assert {p.members for p in on_topic if p.role == "ensemble"} == {(1, 3)}
    assert sum(1 for p in on_topic if p.role == "shadow") == PHASE
