"""`streamscore bench`: in-database scoring of the bundled dense net (v3) and CNN (v4), side by side.

Issue 13 asks the CNN to score at ≥ 0.2× the dense net's in-database rate. Each model is measured
as the scoring figure is (``Backend.score`` over the test set, best of 3, after a warm-up) and as
the consumer runs it (``write_batch`` of 500-image batches: insert, score, predictions, offsets,
commit). An engine that refuses a model (``unsupported-layers``) reports the refusal instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from streamscore.backends import Backend, ImageBatch, ModelRef, SourceOffset, open_configured_backend
from streamscore.errors import BackendError
from streamscore.models import ARCH_VERSIONS, bundled_model
from streamscore.shared.config import Settings
from streamscore.shared.mnist import MnistSplit

BATCH = 500


def _batches(split: MnistSplit, tag: str) -> list[ImageBatch]:
    batches = []
    for start in range(0, len(split), BATCH):
        rows = np.arange(start, min(start + BATCH, len(split)))
        sources = [SourceOffset("bench", 0, int(row)) for row in rows]
        batches.append(ImageBatch(
            f"{tag}-{start}", [f"{tag}-{row:05d}" for row in rows], split.images[rows],
            split.labels[rows].astype(np.int16), np.zeros(len(rows), np.int64), sources,
            {("bench", 0): int(rows[-1]) + 1},
        ))
    return batches


def architecture_rates(settings: Settings, backend_url: str, split: MnistSplit) -> dict[str, Any]:
    """images/s of score() and of write_batch() per architecture, and the CNN ÷ dense ratios."""
    results: dict[str, Any] = {}
    with open_configured_backend(settings, backend_url) as backend:
        backend.init_schema()
        for arch in ("dense", "cnn"):
            model = dataclasses.replace(bundled_model(ARCH_VERSIONS[arch]), name=f"bench_{arch}")
            ref = ModelRef(model.name, model.version)
            try:
                backend.install_model(model)
            except BackendError as exc:
                results[arch] = {"refused": exc.reason}
                continue
            results[arch] = _measure(backend, ref, split, arch)
    if "score_images_per_s" in results.get("cnn", {}) and "score_images_per_s" in results.get("dense", {}):
        results["cnn_vs_dense_score"] = results["cnn"]["score_images_per_s"] / results["dense"]["score_images_per_s"]
        results["cnn_vs_dense_write_batch"] = (results["cnn"]["write_batch_images_per_s"]
                                               / results["dense"]["write_batch_images_per_s"])
    return results


def _measure(backend: Backend, ref: ModelRef, split: MnistSplit, arch: str) -> dict[str, float]:
    from streamscore.bench.runner import best_rate

    backend.score(split.images[:100], ref)  # warm caches (weights, UDF, plans)
    score_rate = best_rate(lambda: backend.score(split.images, ref), len(split))
    batches = _batches(split, f"arch-{arch}")
    write_rate = best_rate(lambda: [backend.write_batch(b, ref, f"bench-{arch}") for b in batches],
                           len(split), repeats=1)
    return {"score_images_per_s": score_rate, "write_batch_images_per_s": write_rate}


def architecture_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Table rows for bench_table."""
    rows = []
    for arch in ("dense", "cnn"):
        figures = results.get(arch, {})
        if "refused" in figures:
            rows.append((f"in-database {arch} (v{ARCH_VERSIONS[arch]})", f"refused ({figures['refused']})"))
        elif figures:
            rows.append((f"in-database {arch} (v{ARCH_VERSIONS[arch]}): score / write_batch",
                         f"{figures['score_images_per_s']:,.0f} / {figures['write_batch_images_per_s']:,.0f} images/s"))
    if "cnn_vs_dense_score" in results:
        rows.append(("in-database CNN ÷ dense: score / write_batch",
                     f"{results['cnn_vs_dense_score']:.2f}× / {results['cnn_vs_dense_write_batch']:.2f}×"))
    return rows
