"""Failed model swaps on the scoring loop (fake Kafka, real DuckDB): each rejection is a model-rejected
record on the evaluation topic and a metric, once per (version, reason), with the old version serving and
no image lost; an install that a database outage interrupts is retried until it succeeds."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from streamscore.consumers.evaluator import Evaluation
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.keys import generate_key_files, load_private_key
from streamscore.models import bundled_model
from streamscore.producers.models import signature_headers
from streamscore.shared.evaluation_events import MODEL_REJECTED, ModelRejected, record_kind
from streamscore.shared.messages import Prediction, model_headers
from support.fake_kafka import FakeCluster
from support.loop_harness import FlakyDuckDB, LoopRun, loop_settings

IDS = [f"t10k-{i:05d}" for i in range(30)]


def append_model(cluster: FakeCluster, value: bytes, version: int, *, sha256: str | None = None,
                 extra: list[tuple[str, bytes]] | None = None) -> None:
    headers = model_headers(version, sha256 or hashlib.sha256(value).hexdigest())
    cluster.append("models", 0, b"mlp", value, [(n, bytes(v or b"")) for n, v in headers] + (extra or []))


def rejections(run: LoopRun, reason: str) -> float:
    value = run.scorer.metrics.registry.get_sample_value("streamscore_model_rejections_total", {"reason": reason})
    return value or 0.0


def served_versions(backend: FlakyDuckDB) -> dict[str, int]:
    return dict(backend.rows()[0])


def test_each_rejection_is_an_event_and_a_metric_once_and_the_old_version_keeps_serving(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    run = LoopRun(loop_settings(tmp_path), cluster, backend)
    cluster.publish_model("models", bundled_model(2).with_version(3))
    run.wait(lambda: run.scorer.stats.model_version == 3, "v3 serving")
    good = bundled_model(2).with_version(4).to_bytes()
    append_model(cluster, good, 4, sha256="0" * 64)  # bad-digest
    truncated = good[: len(good) // 2]
    append_model(cluster, truncated, 5)  # unreadable
    narrow = build_artifact("mlp", 6, [np.zeros((784, 5), np.float32)], [np.zeros(5, np.float32)], ["softmax"])
    append_model(cluster, narrow.to_bytes(), 6)  # bad-shape
    lying = bundled_model(2).with_version(7)
    append_model(cluster, replace(lying, manifest=lying.manifest | {"canary": [9] * 8}).to_bytes(), 7)  # bad-canary
    cluster.publish_model("models", bundled_model(2).with_version(2))  # not-newer, never served here
    cluster.publish_model("models", bundled_model(2).with_version(2))  # the same again: reported once
    cluster.publish_model("models", bundled_model(2).with_version(3))  # the serving version re-read: silent
    cluster.send_images("images", IDS)
    expected = ["bad-digest", "unreadable", "bad-shape", "bad-canary", "not-newer"]
    run.wait(lambda: len(run.events()) == len(expected) and len(run.predicted_ids()) == len(IDS), "events, images")
    assert run.finish() is None
    events = run.events()
    assert [(e.model_version, e.reason) for e in events] == [(4, "bad-digest"), (5, "unreadable"), (6, "bad-shape"),
                                                             (7, "bad-canary"), (2, "not-newer")]
    assert all(e.model_name == "mlp" and e.backend == "duckdb" and e.group == "g" and e.at > 0 and e.message
               for e in events)
    raw = [m for m in cluster.messages("predictions") if record_kind(m.headers(), m.value())]
    assert {m.key() for m in raw} == {b"\x1fmodel-rejected:mlp"}, "a key no image id can have"
    assert {dict(m.headers())["kind"] for m in raw} == {MODEL_REJECTED.encode()}
    assert {reason: rejections(run, reason) for reason in expected} == dict.fromkeys(expected, 1.0)
    assert set(served_versions(backend).values()) == {3} and sorted(run.predicted_ids()) == IDS


def signed(artifact: ModelArtifact, key_file: Path) -> tuple[bytes, list[tuple[str, bytes]]]:
    value = artifact.to_bytes()
    return value, [(n, bytes(v or b"")) for n, v in signature_headers(value, load_private_key(key_file))]


def test_with_a_public_key_only_models_it_signed_are_served(tmp_path: Path, cluster: FakeCluster,
                                                            backend: FlakyDuckDB) -> None:
    ours, theirs = generate_key_files(tmp_path / "ours"), generate_key_files(tmp_path / "theirs")
    settings = loop_settings(tmp_path, model_public_key_file=str(ours.public))
    cluster.create_topic(settings.models_topic, 1)
    value, headers = signed(bundled_model(1), ours.private)
    append_model(cluster, value, 1, extra=headers)
    run = LoopRun(settings, cluster, backend)
    run.wait(lambda: run.scorer.stats.model_version == 1, "the signed v1")
    cluster.publish_model("models", bundled_model(2))  # unsigned
    value, headers = signed(bundled_model(2).with_version(3), theirs.private)
    append_model(cluster, value, 3, extra=headers)  # signed by another key
    run.wait(lambda: len(run.events()) == 2, "two rejections")
    assert [(e.model_version, e.reason) for e in run.events()] == [(2, "unsigned"), (3, "bad-signature")]
    assert run.scorer.stats.model_version == 1
    value, headers = signed(bundled_model(2).with_version(4), ours.private)
    append_model(cluster, value, 4, extra=headers)
    run.wait(lambda: run.scorer.stats.model_version == 4, "the signed v4")
    assert run.finish() is None
    assert rejections(run, "unsigned") == rejections(run, "bad-signature") == 1.0


def test_an_install_interrupted_by_an_outage_is_retried_with_backoff_never_given_up(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    run = LoopRun(loop_settings(tmp_path, max_batch_retries=3), cluster, backend)
    run.wait(lambda: run.scorer.stats.model_version == 1, "v1 serving")
    backend.failing_installs = 1_000_000
    cluster.publish_model("models", bundled_model(2))
    registry = run.scorer.metrics.registry
    run.wait(lambda: (registry.get_sample_value("streamscore_model_install_retries_total") or 0) >= 6,
             "more install attempts than max_batch_retries")
    cluster.send_images("images", IDS[:15])
    run.wait(lambda: len(run.predicted_ids()) == 15, "images scored by v1 during the outage")
    assert run.scorer.stats.model_version == 1 and run.scorer.watcher.pending_version == 2
    backend.failing_installs = 0
    run.wait(lambda: run.scorer.stats.model_version == 2, "v2 once the database is back")
    cluster.send_images("images", IDS[15:])
    run.wait(lambda: len(run.predicted_ids()) == len(IDS), "the rest, by v2")
    assert run.finish() is None
    versions = served_versions(backend)
    assert {versions[i] for i in IDS[:15]} == {1} and {versions[i] for i in IDS[15:]} == {2}
    assert run.events() == [] and run.scorer.stats.fatal is None


def test_the_evaluator_lists_events_apart_from_predictions() -> None:
    evaluation = Evaluation()
    prediction = Prediction("t10k-00001", 3, (0.1,) * 10, 3, "mlp", 2, "champion", "duckdb", 1, 2)
    event = ModelRejected("mlp", 7, "bad-signature", "no", 5, "duckdb", "g")
    assert evaluation.add_record(prediction.headers(), prediction.to_json()) == prediction
    assert evaluation.add_record(event.headers(), event.to_json()) is None
    assert evaluation.add_record([], event.to_json()) is None, "recognised without the header, and de-duplicated"
    assert evaluation.add_record([("kind", b"model-promoted")], b"{}") is None
    report = evaluation.to_json()
    assert report["predictions"] == 1 and report["malformed"] == 0
    assert [(r["model_version"], r["reason"]) for r in report["model_rejections"]] == [(7, "bad-signature")]
    assert evaluation.other_kinds == 1


def test_a_restarted_consumer_reports_no_history_but_a_live_older_version(
        tmp_path: Path, cluster: FakeCluster, backend: FlakyDuckDB) -> None:
    settings = loop_settings(tmp_path)
    first = LoopRun(settings, cluster, backend)
    for version in (2, 3):
        cluster.publish_model("models", bundled_model(2).with_version(version))
        first.wait(lambda v=version: first.scorer.stats.model_version == v, f"v{version} serving")  # type: ignore[misc]
    assert first.finish() is None
    again = LoopRun(settings, cluster, backend)  # reads v1, v2, v3 from the start: history, nothing to report
    cluster.send_images("images", IDS)
    again.wait(lambda: len(again.predicted_ids()) == len(IDS), "the images")
    assert again.events() == [] and not again.scorer.watcher.rejected
    cluster.publish_model("models", bundled_model(2).with_version(2))  # published now: a failed swap back to v2
    again.wait(lambda: len(again.events()) == 1, "the not-newer record")
    assert again.finish() is None
    assert [(e.model_version, e.reason) for e in again.events()] == [(2, "not-newer")]


def test_a_rejection_whose_delivery_fails_is_sent_again(tmp_path: Path, cluster: FakeCluster,
                                                        backend: FlakyDuckDB) -> None:
    run = LoopRun(loop_settings(tmp_path), cluster, backend)
    run.wait(lambda: run.scorer.stats.model_version == 1, "v1 serving")
    cluster.failing_deliveries = 1
    append_model(cluster, bundled_model(2).to_bytes(), 2, sha256="0" * 64)
    run.wait(lambda: len(run.events()) == 1, "the model-rejected record, on a second try")
    cluster.send_images("images", IDS[:5])
    run.wait(lambda: len(run.predicted_ids()) == 5, "the images")
    assert run.finish() is None
    assert cluster.failing_deliveries == 0 and [e.reason for e in run.events()] == ["bad-digest"]
