"""Scoring on Kinetica: one batch (the steps of backend.py's module doc), and several versions per
batch (issue 12), in ordered idempotent steps, no transaction.

Kinetica has no multi-statement transactions, so a serving set is written the way one batch is
(backend.py): every version's predictions first — the shadows, then the served versions, each a
``write_batch`` without offsets — then, for an ensemble, its served rows computed in the database
(``merge_ensemble``: the members' mean per image, upserted under role ``ensemble``), and the
offsets last. A crash at any point replays the batch, and every step is an upsert on its key, so
the rows converge.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING, Any

from streamscore.backends.base import ImageBatch, ModelRef, ScoredBatch, ServingSet
from streamscore.backends.kinetica import tables
from streamscore.shared.messages import now_ms

if TYPE_CHECKING:
    from streamscore.backends.kinetica.backend import KineticaBackend

log = logging.getLogger(__name__)

#: image ids per ensemble merge (bind parameters of one statement, with the member versions)
MERGE_CHUNK = 1000
#: image ids per primary-key lookup (id-conflicts, stored predictions: bind parameters of one statement)
LOOKUP_CHUNK = 1000


def write_batch(backend: KineticaBackend, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
    """One batch with one version: steps 0-4 of backend.py's module doc."""
    # a fresh scoring id per attempt: the UDF scores every inbox row tagged with it, so a retry
    # of a subset (a partition was revoked) never finds rows of the failed attempt
    scoring_id = uuid.uuid4().hex
    records = tables.image_records(batch, batch.unique_rows(), scoring_id)
    scored_at = now_ms()
    selector = [scoring_id, model.name, model.version, model.role]
    with backend.translate_errors(f"writing batch {batch.batch_id} (scoring id {scoring_id})"):
        weights = backend._model_params(model)
        conflicts = find_conflicts(backend, records)                            # 0. id-conflicts
        conflicting = [str(record[0]) for record in records if record[0] in conflicts]
        if conflicts:
            records = [record for record in records if record[0] not in conflicts]
        stored: list[list[Any]] = []
        if records:
            backend._upsert("images", records)                                   # 1. images
            inbox = tables.inbox_records([r[0] for r in records], [r[1] for r in records],
                                         scoring_id, scored_at)
            backend._score(inbox, scoring_id, model, weights)                     # 2. inbox → UDF → stage
            backend._execute_sql("merge_predictions", selector)                  # 3. predictions
            backend._execute_sql("delete_stage", [scoring_id])
            stored = backend.stored_predictions([str(r[0]) for r in records], selector)
        if batch.offsets:                                                     # 4. offsets
            backend._upsert_offsets(group, batch.offsets)
    ids = [str(record[0]) for record in records]
    return tables.scored_batch(ids, stored, model, scored_at, conflicting)


def find_conflicts(backend: KineticaBackend, records: list[list[Any]]) -> set[str]:
    """Ids of ``records`` already stored with other pixels or label (one primary-key lookup).

    Kinetica has no transactions and no INSERT … RETURNING, so the check comes before the
    upsert; the upsert then only re-tags replays (same content) with this batch's id.
    """
    stored: list[list[Any]] = []
    for start in range(0, len(records), LOOKUP_CHUNK):
        chunk = [str(record[0]) for record in records[start:start + LOOKUP_CHUNK]]
        stored.extend(backend._query("select_images", [], chunk))
    conflicts = tables.conflicting_rows(records, stored)
    if conflicts:
        log.warning("%d image id(s) already stored with other content (id-conflict), e.g. %r",
                    len(conflicts), min(conflicts))
    return conflicts


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
