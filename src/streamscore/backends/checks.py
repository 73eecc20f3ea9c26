"""The checks every engine applies in the same place, and the errors they raise.

Engines call these instead of writing their own: a model name too long for any engine's
column, an install over different weights, a version that is not installed, rows left
without a prediction — one message and one reason code on every engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamscore.backends.records import MAX_MODEL_NAME_BYTES, ModelRef
from streamscore.errors import ArtifactError, BackendError, BackendUnavailable, ConfigError
from streamscore.model.artifact import ModelArtifact
from streamscore.model.layers import layer_types


def check_model_name(name: str) -> None:
    """ArtifactError unless ``name`` fits every engine's model-name column."""
    size = len(name.encode("utf-8"))
    if not name or size > MAX_MODEL_NAME_BYTES:
        raise ArtifactError(
            f"model name {name[:80]!r} is {size} bytes; names must be 1 to {MAX_MODEL_NAME_BYTES} "
            "UTF-8 bytes: rename the model", reason="bad-name",
        )


def already_installed(ref: ModelRef, stored_sha256: str | None, artifact: ModelArtifact) -> bool:
    """True when ``ref`` is installed with the artifact's weights; ArtifactError when with others."""
    if stored_sha256 is None:
        return False
    if stored_sha256 != artifact.sha256:
        raise ArtifactError(
            f"{ref} is already installed with different weights (sha256 {stored_sha256[:12]}…, "
            f"new {artifact.sha256[:12]}…): publish the new weights under a new version",
            reason="version-conflict",
        )
    return True


def check_layers(artifact: ModelArtifact, scorer: str, supported: frozenset[str] = frozenset({"dense"})) -> None:
    """BackendError ``unsupported-layers`` (before anything is written) when ``scorer`` cannot run
    every layer type of the artifact; the model watcher logs it and the current version keeps serving."""
    unsupported = [kind for kind in layer_types(artifact.layers) if kind not in supported]
    if unsupported:
        raise BackendError(
            f"{scorer} cannot score the {', '.join(unsupported)} layer(s) of {artifact.name} v{artifact.version} "
            f"(it runs {', '.join(sorted(supported))} layers): serve this model on DuckDB (scorer=udf), PostgreSQL, "
            "Kinetica or Oracle 23ai (scorer=onnx); the current version keeps serving",
            reason="unsupported-layers",
        )


def not_installed(ref: ModelRef, where: str) -> ArtifactError:
    """The error for scoring or loading a version that is not installed (every engine)."""
    return ArtifactError(
        f"model {ref} is not installed in {where}: install_model() it first", reason="not-installed"
    )


def predictions_missing(missing: Sequence[str], expected: int, model: ModelRef) -> BackendUnavailable:
    """The error for rows without a prediction after scoring (retried: a rebalance race)."""
    return BackendUnavailable(
        f"{len(missing)} of {expected} images have no {model} {model.role} prediction after "
        f"scoring (first: {missing[0]!r}), e.g. another consumer took them over; the batch "
        "will be written again", reason="predictions-missing",
    )


def describe(exc: BaseException) -> str:
    """One line naming the driver error, its code when it has one (SQLSTATE, ORA-…)."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "full_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    prefix = f"[{code}] " if code else ""
    return f"{prefix}{type(exc).__name__}: {text}"[:500]


def check_purge_age(older_than_s: float) -> float:
    """The age of a purge in seconds, refused when negative or not a number (every engine)."""
    if not older_than_s >= 0:  # also refuses NaN
        raise ConfigError(f"purge: the age must be 0 seconds or more, not {older_than_s!r}")
    return float(older_than_s)
