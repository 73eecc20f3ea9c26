"""Several versions per batch on Kinetica (issue 12): ordered idempotent steps, no transaction.

Kinetica has no multi-statement transactions, so a serving set is written the way one batch is
(backend.py): every version's predictions first — the shadows, then the served versions, each a
``write_batch`` without offsets — then, for an ensemble, its served rows computed in the database
(``merge_ensemble``: the members' mean per image, upserted under role ``ensemble``), and the
offsets last. A crash at any point replays the batch, and every step is an upsert on its key, so
the rows converge.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING

from streamscore.backends.base import ImageBatch, ScoredBatch, ServingSet
from streamscore.backends.kinetica import tables

if TYPE_CHECKING:
    from streamscore.backends.kinetica.backend import KineticaBackend

#: image ids per ensemble merge (bind parameters of one statement, with the member versions)
MERGE_CHUNK = 1000


def write_set(backend: KineticaBackend, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
    quiet = dataclasses.replace(batch, offsets={})
    shadows = [backend.write_batch(quiet, ref, group) for ref in serving.shadows]
    served = [backend.write_batch(quiet, ref, group) for ref in serving.served]
    result = merge_ensemble(backend, served[0], serving) if serving.is_ensemble else served[0]
    if batch.offsets:
        backend.store_offsets(group, batch.offsets)
    return [result, *shadows]


def merge_ensemble(backend: KineticaBackend, member: ScoredBatch, serving: ServingSet) -> ScoredBatch:
    """The ensemble's served rows for the images ``member`` scored, computed and stored by Kinetica."""
    ref, scoring_id = serving.served_ref, f"ensemble-{uuid.uuid4().hex}"
    model_id = f"{ref.name}-ensemble-{'+'.join(f'v{v}' for v in serving.members)}"[:128]
    selector = [scoring_id, ref.name, ref.version, model_id, "ensemble", "member"]
    versions = list(serving.members)
    with backend.translate_errors(f"merging the ensemble {serving}"):
        for start in range(0, len(member.image_ids), MERGE_CHUNK):
            ids = member.image_ids[start:start + MERGE_CHUNK]
            statement = tables.sql("merge_ensemble", backend.schema, len(ids), first=len(selector) + 1,
                                   versions=len(versions))
            backend.execute_statement(statement, [*selector, *ids, *versions])
        stored = backend.stored_predictions(member.image_ids, [scoring_id, ref.name, ref.version, ref.role])
    scored = tables.scored_batch(member.image_ids, stored, ref, int(member.scored_at.max(initial=0)),
                                 member.conflicts)
    return dataclasses.replace(scored, members=serving.members)
