"""DuckDB results as the contract's values: Arrow rows of a scoring pass → ScoredBatch."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from streamscore.backends.base import ModelRef, ScoredBatch


def scored_batch(stored: pa.Table, ref: ModelRef, scored_at: int, conflicts: list[str],
            members: tuple[int, ...]) -> ScoredBatch:
    probabilities = probabilities_of(stored.column("probabilities"))
    return ScoredBatch(
        image_ids=stored.column("image_id").to_pylist(),
        predicted=probabilities.argmax(axis=1).astype(np.int64),
        probabilities=probabilities,
        scored_at=np.full(stored.num_rows, scored_at, np.int64),
        model=ref,
        conflicts=conflicts,
        members=members,
    )


def probabilities_of(column: pa.ChunkedArray) -> npt.NDArray[np.float32]:
    """An Arrow FLOAT[10] column as an (n, 10) float32 matrix, without a Python loop."""
    if len(column) == 0:
        return np.zeros((0, 10), np.float32)
    flat: npt.NDArray[np.float32] = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(-1, 10)
