"""Model artifacts (npz + manifest), the numpy reference forward pass, signing, the trainer."""

from streamscore.model.artifact import ModelArtifact, load_artifact
from streamscore.model.reference import forward, predict

__all__ = ["ModelArtifact", "forward", "load_artifact", "predict"]
