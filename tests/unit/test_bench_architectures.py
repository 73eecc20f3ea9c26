"""The dense-vs-CNN rows of `streamscore bench`, run on a DuckDB file over a few images (not a measurement)."""

from __future__ import annotations

from pathlib import Path

from streamscore.bench.architectures import architecture_rates, architecture_rows
from streamscore.shared.config import Settings
from streamscore.shared.mnist import MnistSplit


def test_both_architectures_are_scored_and_compared(tmp_path: Path, test_split: MnistSplit) -> None:
    url = f"duckdb:///{tmp_path / 'arch.db'}"
    few = MnistSplit("test", test_split.images[:600], test_split.labels[:600])
    results = architecture_rates(Settings().with_overrides(backend=url), url, few)
    assert set(results["dense"]) == set(results["cnn"]) == {"score_images_per_s", "write_batch_images_per_s"}
    assert results["cnn_vs_dense_score"] > 0 and results["cnn_vs_dense_write_batch"] > 0
    names = [name for name, _ in architecture_rows(results)]
    assert names[-1] == "in-database CNN ÷ dense: score / write_batch"


def test_a_refusing_engine_is_reported_not_measured() -> None:
    rows = architecture_rows({"dense": {"score_images_per_s": 1.0, "write_batch_images_per_s": 1.0},
                              "cnn": {"refused": "unsupported-layers"}})
    assert rows[-1] == ("in-database cnn (v4)", "refused (unsupported-layers)")
