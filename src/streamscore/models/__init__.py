"""The two models shipped with streamscore (see docs/models.md for how they were trained).

* ``mlp-v1.npz`` — the seed net after 300 SGD steps (weaker; the demo's starting model)
* ``mlp-v2.npz`` — the seed net after 30,000 SGD steps (Canali's recipe)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from streamscore.model.artifact import ModelArtifact, load_artifact


def bundled_path(version: int, name: str = "mlp") -> Path:
    return Path(str(resources.files("streamscore") / "models" / f"{name}-v{version}.npz"))


def bundled_model(version: int, name: str = "mlp") -> ModelArtifact:
    return load_artifact(bundled_path(version, name))
