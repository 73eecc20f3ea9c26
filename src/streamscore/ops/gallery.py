"""misclassified.png: per model version, a grid of the misclassified digits drawn from their pixels.

Each tile is captioned ``true → predicted (probability of the predicted digit)``. The same
drawing serves both evaluators: ``evaluate --from-backend`` takes the images and pixels from the
database (``Backend.misclassified``), the topic evaluator from the images topic
(``ops/topic_gallery.py``). matplotlib, as for confusion.png.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from streamscore.backends.evaluation import GALLERY_LIMIT, Misclassified

COLUMNS = 10
GALLERY_FILE = "misclassified.png"


def _rows(count: int) -> int:
    return max(1, -(-count // COLUMNS))


def draw_gallery(items: Sequence[Misclassified], out_dir: Path, *, versions: Sequence[int] = (),
                 wrong: Mapping[int, int] | None = None, missing: Mapping[int, int] | None = None) -> Path:
    """Write ``out_dir/misclassified.png``: one block per model version (of ``versions`` and the items).

    :param wrong: misclassified images per version in all (the title says how many are shown)
    :param missing: per version, misclassified images whose pixels were not found (not drawn)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_version: dict[int, list[Misclassified]] = {version: [] for version in versions}
    for item in items:
        by_version.setdefault(item.model_version, []).append(item)
    blocks = sorted(by_version.items()) or [(0, [])]
    heights = [0.45 + 1.15 * _rows(len(shown)) for _, shown in blocks]
    fig = plt.figure(figsize=(COLUMNS * 1.05, sum(heights)))
    made = fig.subfigures(len(blocks), 1, height_ratios=heights)
    subfigures = list(made.reshape(-1)) if isinstance(made, np.ndarray) else [made]
    for subfigure, (version, shown) in zip(subfigures, blocks, strict=True):
        shown = sorted(shown, key=lambda item: item.image_id)[:GALLERY_LIMIT]
        total = (wrong or {}).get(version, len(shown))
        note = f"; {missing[version]} without pixels" if missing and missing.get(version) else ""
        title = (f"model v{version}: {len(shown)} of {total} misclassified shown{note} — true → predicted "
                 "(probability)") if by_version else "no predictions to show"
        subfigure.suptitle(title, fontsize=10)
        axes = np.atleast_1d(subfigure.subplots(_rows(len(shown)), COLUMNS)).reshape(-1)
        for ax in axes:
            ax.axis("off")
        if not shown:
            axes[0].text(0, 0.5, "no misclassified digits", fontsize=9, va="center")
        for ax, item in zip(axes, shown, strict=False):
            ax.imshow(np.frombuffer(item.pixels, np.uint8).reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(f"{item.true_digit} → {item.predicted} ({item.probability:.2f})", fontsize=7, pad=2)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / GALLERY_FILE
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
