"""Oracle's side of ONNX scoring (issue 16 item 8): the loading metadata of an exported model.

The export itself is engine-neutral (streamscore.model.onnx_export, re-exported here for the
Oracle scorer). :func:`oracle_metadata` is the JSON that ``DBMS_VECTOR.LOAD_ONNX_MODEL`` takes
for a classification model whose 784 input attributes are named P0…P783. Only the export is
built and tested (with onnxruntime, here); the ``oracle://…?scorer=onnx`` scoring path
(onnx_scorer) is written but has never run.
"""

from __future__ import annotations

from typing import Any

from streamscore.model.artifact import INPUTS, OUTPUTS
from streamscore.model.onnx_export import INPUT_NAME, LABEL, PROBABILITIES, to_onnx, to_onnx_bytes

__all__ = ["INPUT_NAME", "LABEL", "PROBABILITIES", "oracle_metadata", "to_onnx", "to_onnx_bytes"]


def oracle_metadata() -> dict[str, Any]:
    """LOAD_ONNX_MODEL metadata: a classifier over attributes P0…P783 (Oracle reads them as pixels)."""
    return {
        "function": "classification",
        "input": {INPUT_NAME: [f"P{index}" for index in range(INPUTS)]},
        "classificationProbOutput": PROBABILITIES,
        "classificationLabelOutput": LABEL,
        "labels": list(range(OUTPUTS)),
    }
