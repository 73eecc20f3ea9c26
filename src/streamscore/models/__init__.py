"""The models shipped with streamscore (see docs/models.md for how they were trained).

* ``mlp-v1.npz`` — the seed net after 300 SGD steps (weaker; the demo's starting model)
* ``mlp-v2.npz`` — the seed net after 30,000 SGD steps (Canali's recipe)
* ``mlp-v3.npz`` — the dense net (``train --arch dense``)
* ``mlp-v4.npz`` — the convolutional net (``train --arch cnn``), a layered artifact

All four are versions of one model name (``mlp``, the name consumers serve), so any of them can
be published to replace another.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from streamscore.errors import ConfigError
from streamscore.model.artifact import ModelArtifact, load_artifact

#: the bundled version of each ``train --arch`` architecture
ARCH_VERSIONS = {"seed": 2, "dense": 3, "cnn": 4}


def bundled_version(spec: str) -> int:
    """A bundled version from ``v2``, ``2`` or an architecture name (``seed``, ``dense``, ``cnn``)."""
    key = spec.strip().lower()
    if key in ARCH_VERSIONS:
        return ARCH_VERSIONS[key]
    try:
        return int(key.removeprefix("v"))
    except ValueError:
        raise ConfigError(
            f"{spec!r} names no bundled model: use v1 … v4 or one of {', '.join(ARCH_VERSIONS)}"
        ) from None


def bundled_path(version: int, name: str = "mlp") -> Path:
    return Path(str(resources.files("streamscore") / "models" / f"{name}-v{version}.npz"))


def bundled_model(version: int, name: str = "mlp") -> ModelArtifact:
    return load_artifact(bundled_path(version, name))
