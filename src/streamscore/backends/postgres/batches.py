"""One batch in one PostgreSQL transaction (statements of ``sql/postgres/batches.sql``).

The write path of :class:`~streamscore.backends.postgres.backend.PostgresBackend` (its module doc
numbers the steps): the fast path COPYs straight into images, the staging path sorts replays from
id-conflicts, then one statement scores one version (or a serving set) and the offsets follow.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from streamscore.backends.base import ImageBatch, ModelRef, ServingSet, TopicPartitionKey
from streamscore.backends.postgres import statements as q
from streamscore.shared.messages import now_ms
from streamscore.shared.timing import PhaseTimes

log = logging.getLogger(__name__)


def unique_in_lock_order(batch: ImageBatch) -> ImageBatch:
    """The batch's distinct ids (first occurrence wins), sorted: one lock order for concurrent writers."""
    rows = batch.unique_rows()
    rows.sort(key=lambda row: batch.image_ids[row])
    return batch.subset(rows, batch.batch_id)


def write(conn: psycopg.Connection[Any], unique: ImageBatch, offsets: dict[TopicPartitionKey, int], group: str,
          single: ModelRef, serving: ServingSet | None, timings: PhaseTimes) -> tuple[list[Any], set[str]]:
    """Images (fast or staging path), scores of ``single`` or of every version of ``serving``, offsets:
    one transaction. The stored prediction rows and the id-conflicts. ``timings``: insert, score (one
    statement scores and stores the predictions), offsets, commit."""
    params = {
        "batch_id": unique.batch_id, "name": single.name, "version": single.version,
        "role": single.role, "scored_at": now_ms(),
    }
    conflicts: set[str] = set()
    # binary results: the probabilities arrays come back without text parsing
    with conn.cursor(binary=True) as cursor:
        with conn.transaction():
            with timings.phase("insert"):
                copied = copy_images(cursor, unique)  # all new: scored straight from images
                if not copied:  # some ids are stored already: the staging path sorts replays from conflicts
                    copy_staging(cursor, unique)
                    cursor.execute(q.statement("insert_images"), params)
                    conflicts = remove_conflicts(cursor, [str(row[0]) for row in cursor.fetchall()])
            with timings.phase("score"):
                if serving is not None:
                    ids = [i for i in unique.image_ids if i not in conflicts]
                    cursor.execute(q.statement("score_set"), params | q.set_params(serving, ids))
                elif copied:
                    cursor.execute(q.statement("score_copied"), params | {"image_ids": unique.image_ids})
                else:
                    cursor.execute(q.statement("score_and_store"), params)
                stored = cursor.fetchall()
            with timings.phase("offsets"):
                if offsets:
                    cursor.execute(q.statement("upsert_offsets"), q.offset_params(group, offsets))
            commit_started = time.perf_counter()
        timings.add("commit", time.perf_counter() - commit_started)
    return stored, conflicts


def remove_conflicts(cursor: psycopg.Cursor[Any], not_inserted: list[str]) -> set[str]:
    """Ids of ``not_inserted`` stored with other content, taken out of the staging table."""
    if not not_inserted:  # a batch of new ids: nothing to compare
        return set()
    cursor.execute(q.statement("remove_conflicts"), {"image_ids": not_inserted})
    conflicts = {str(row[0]) for row in cursor.fetchall()}
    if conflicts:
        log.warning("%d image id(s) already stored with other content (id-conflict), e.g. %r",
                    len(conflicts), min(conflicts))
    return conflicts


def copy_images(cursor: psycopg.Cursor[Any], batch: ImageBatch) -> bool:
    """COPY the batch straight into images in a savepoint; False (nothing kept) when an id exists."""
    try:
        with cursor.connection.transaction(), cursor.copy(q.statement("copy_images")) as copy:
            copy.set_types(list(q.IMAGE_TYPES))
            for row in q.staging_rows(batch):
                copy.write_row((*row, batch.batch_id))
    except psycopg.errors.UniqueViolation:
        return False
    return True


def copy_staging(cursor: psycopg.Cursor[Any], batch: ImageBatch) -> None:
    with cursor.copy(q.statement("copy_staging")) as copy:
        copy.set_types(list(q.STAGING_TYPES))
        for row in q.staging_rows(batch):
            copy.write_row(row)
