"""Both evaluators agree on one real stream: `evaluate` (the evaluation topic, pixels from the images
topic; in-process, as the command runs it) and `evaluate --from-backend URL` (sql/<engine>/evaluation.sql
in the database; the command as a user runs it), on DuckDB and PostgreSQL.

The stream: the embedded broker, a Scorer over the backend, 400 images scored by model v1, a swap to
v2, 400 more (so two versions, each with more misclassified digits than the gallery shows for v1).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from postgres_fixtures import postgres_schema_url
from streamscore.backends import open_backend
from streamscore.consumers.scorer import Scorer
from streamscore.models import bundled_model
from streamscore.ops.evaluation_view import evaluate_and_report
from streamscore.ops.topic_gallery import topic_gallery
from streamscore.producers.images import produce_images
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics
from streamscore.shared.mnist import MnistSplit
from support.drill import split_slice, wait_until

pytestmark = pytest.mark.slow

HALF = 400


@contextlib.contextmanager
def backend_url(engine: str, tmp_path: Path) -> Iterator[str]:
    if engine == "duckdb":
        yield f"duckdb:///{tmp_path / 'agree.duckdb'}"
    else:
        with postgres_schema_url() as url:
            yield url


def stream_two_versions(settings: Settings, split: MnistSplit) -> None:
    """400 images scored by v1, the swap, 400 more by v2; returns once the scorer has stopped."""
    ensure_topics(settings)
    publish_model(settings, bundled_model(1))
    scorer = Scorer(settings, open_backend(settings.backend_url))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scorer.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert scorer.ready.wait(30), "consumer did not join its group"
        produce_images(settings, split_slice(split, 0, HALF))
        wait_until(lambda: scorer.stats.scored >= HALF or bool(errors), 60, "the v1 images")
        publish_model(settings, bundled_model(2))
        wait_until(lambda: scorer.stats.model_version == 2 or bool(errors), 30, "the switch to v2")
        produce_images(settings, split_slice(split, HALF, 2 * HALF))
        wait_until(lambda: scorer.stats.scored >= 2 * HALF or bool(errors), 60, "the v2 images")
    finally:
        scorer.stop.set()
        thread.join(30)
    assert not errors, errors


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamscore.cli", *args], env=os.environ | {"COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120, check=False)


def report(folder: Path) -> dict[str, Any]:
    assert (folder / "confusion.png").stat().st_size > 10_000
    assert (folder / "misclassified.png").stat().st_size > 10_000
    loaded: dict[str, Any] = json.loads((folder / "report.json").read_text())
    return loaded


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_topic_and_database_evaluations_agree(engine: str, make_settings: Callable[..., Settings],
                                              test_split: MnistSplit, tmp_path: Path) -> None:
    with backend_url(engine, tmp_path) as url:
        settings = make_settings(backend=url, batch_size=100, session_timeout_ms=3000)
        stream_two_versions(settings, test_split)

        evaluation = evaluate_and_report(settings, threading.Event(), follow=False, expect=2 * HALF, idle=3.0,
                                         out=tmp_path / "topic", console=Console(), err_console=Console(stderr=True))
        from_database = cli("evaluate", "--from-backend", url, "--out", str(tmp_path / "database"))
        assert from_database.returncode == 0, from_database.stderr
        assert "accuracy per model version in" in from_database.stdout
        assert "per true digit" in from_database.stdout

        topic, database = report(tmp_path / "topic"), report(tmp_path / "database")
        assert [v["model_version"] for v in database["versions"]] == [1, 2]
        assert sum(v["scored"] for v in database["versions"]) == 2 * HALF
        assert database["versions"] == topic["versions"], "same counts, accuracy, confusion and per-digit rows"
        assert database["gallery"]["misclassified"] == topic["gallery"]["misclassified"]

        # the galleries show the same digits with the same captions and pixels
        with open_backend(url) as backend:
            in_database = backend.misclassified()
        from_images_topic = topic_gallery(settings, evaluation)
        assert not from_images_topic.missing
        assert len(in_database) == topic["gallery"]["shown"] == database["gallery"]["shown"] > 50
        key = lambda m: (m.model_version, m.image_id)  # noqa: E731 - a sort key
        for mine, theirs in zip(sorted(in_database, key=key), sorted(from_images_topic.items, key=key), strict=True):
            assert (mine.model_version, mine.image_id, mine.true_digit, mine.predicted, mine.pixels) == \
                (theirs.model_version, theirs.image_id, theirs.true_digit, theirs.predicted, theirs.pixels)
            assert mine.probability == pytest.approx(theirs.probability, abs=1e-6)
