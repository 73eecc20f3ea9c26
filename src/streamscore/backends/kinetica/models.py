"""Model storage in Kinetica: a version's models and model_layers rows, and the lifecycle snapshot.

Functions over the backend's row seams (``_query``, ``_upsert``), like train.py and serving.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamscore.backends.base import ModelRef
from streamscore.backends.checks import already_installed, not_installed
from streamscore.backends.kinetica import tables
from streamscore.model.artifact import ModelArtifact
from streamscore.shared.messages import now_ms

if TYPE_CHECKING:
    from streamscore.backends.kinetica.backend import KineticaBackend


def install(backend: KineticaBackend, artifact: ModelArtifact) -> None:
    """Layers first, the models row last: a version is listed only when complete."""
    ref = ModelRef(artifact.name, artifact.version)
    with backend.translate_errors(f"installing {ref}"):
        heads = backend._query("select_model", [ref.name, ref.version])
        if already_installed(ref, str(heads[0][1]) if heads else None, artifact):
            return
        layers, head = tables.layer_records(artifact), tables.model_record(artifact, now_ms())
        tables.check_model_fits(ref, layers, head)
        backend._upsert("model_layers", layers)
        backend._upsert("models", [head])


def load(backend: KineticaBackend, ref: ModelRef) -> ModelArtifact:
    with backend.translate_errors(f"loading model {ref}"):
        heads = backend._query("select_model", [ref.name, ref.version])
        layers = backend._query("select_layers", [ref.name, ref.version])
    if not heads:
        raise not_installed(ref, f"{backend.schema}.models")
    return tables.artifact_from_rows(ref.name, ref.version, heads[0], layers)


def stored_lifecycle(backend: KineticaBackend, name: str) -> tuple[int, str] | None:
    with backend.translate_errors("reading the model lifecycle"):
        rows = backend._query("select_lifecycle", [name])
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


def store_lifecycle(backend: KineticaBackend, name: str, revision: int, state: str) -> None:
    """Read, then upsert when higher (Kinetica has no conditional upsert: two consumers racing may leave
    the lower of two new revisions stored; a restart then takes the higher one from the topic)."""
    stored = backend.stored_lifecycle(name)
    if stored is None or revision > stored[0]:
        with backend.translate_errors("storing the model lifecycle"):
            backend._upsert("model_lifecycle", [[name, revision, state, now_ms()]])
