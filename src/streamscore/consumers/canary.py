"""The canary check of a model install: the database scores the manifest's canary images exactly as the
numpy reference does. Run by the model watcher on the loop, or ahead on a second session
(:mod:`.install_ahead`)."""

from __future__ import annotations

import numpy as np

from streamscore.backends.base import Backend, ModelRef
from streamscore.model.artifact import ModelArtifact
from streamscore.model.reference import predict


def canary_mismatch(backend: Backend, artifact: ModelArtifact) -> str | None:
    """What the database scored when it differs from the manifest's canary digits; None when it agrees
    (or the artifact has no canary)."""
    if artifact.canary_pixels is None or "canary" not in artifact.manifest:
        return None
    got = predict(backend.score(artifact.canary_pixels, ModelRef(artifact.name, artifact.version))).tolist()
    expected = [int(c) for c in artifact.manifest["canary"]]
    if np.array_equal(got, expected):
        return None
    return f"in-database scores {got} differ from the reference {expected}"
