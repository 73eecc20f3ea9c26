"""The image half of an Oracle batch: INSERT with batch errors, id-conflicts, the batch's ids.

Each image is written once, by a plain ``INSERT`` (``executemany(batcherrors=True)``): a
replayed id fails that row with ORA-00001 and leaves the stored row as it is (no row is
rewritten or locked by a replay, a second consumer only waits for the first one's commit).
The ids that were stored already are compared with the stored rows in one statement
(``mnist_batch_replays``, a global temporary table): those with other content are
id-conflicts, left out of the batch. The rest of the batch's ids go to ``mnist_batch_ids``
(global temporary, ``ON COMMIT DELETE ROWS``), which the scorer and ``select_predictions``
join; nothing about a batch is stored in the image rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import oracledb

from streamscore.backends.oracle import errors as oracle_errors
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.backends.oracle.statements import ImageBind

log = logging.getLogger(__name__)

#: ORA-00001: the image id is stored already (a replay, another consumer, or an id-conflict)
ALREADY_STORED = 1


def insert_images(cursor: oracledb.Cursor, binds: Sequence[ImageBind]) -> list[ImageBind]:
    """INSERT the images; return the binds whose id was stored already.

    Any row error other than ORA-00001 rolls the batch back (the caller's transaction) with
    the error of :func:`oracle_errors.row_errors` (each row's error classified on its own).
    """
    if not binds:
        return []
    # label is often NULL for a whole batch: type it, or it would bind as a string
    cursor.setinputsizes(None, None, oracledb.DB_TYPE_NUMBER, oracledb.DB_TYPE_NUMBER, None)
    cursor.executemany(oracle_sql.statement("insert_image"), list(binds), batcherrors=True)
    errors = cursor.getbatcherrors()
    rejected = [error for error in errors if error.code != ALREADY_STORED]
    if rejected:
        raise oracle_errors.row_errors(rejected, binds)
    return [binds[error.offset] for error in errors]


def find_conflicts(cursor: oracledb.Cursor, stored: Sequence[ImageBind]) -> list[str]:
    """The ids of ``stored`` whose stored pixels or label differ from the batch's (id-conflict).

    One executemany into the temporary table and one join; nothing when every id was new.
    """
    if not stored:
        return []
    cursor.setinputsizes(None, None, oracledb.DB_TYPE_NUMBER)
    cursor.executemany(oracle_sql.statement("insert_replay"),
                       [(bind[0], bind[1], bind[2]) for bind in stored])
    cursor.execute(oracle_sql.statement("select_conflicts"))
    different = {str(row[0]) for row in cursor.fetchall()}
    conflicts = [bind[0] for bind in stored if bind[0] in different]
    if conflicts:
        log.warning("%d image id(s) already stored with other content (id-conflict), e.g. %r",
                    len(conflicts), conflicts[0])
    return conflicts


def stage_batch_ids(cursor: oracledb.Cursor, image_ids: Sequence[str]) -> None:
    """The ids the scorer scores (and select_predictions returns), for this transaction only."""
    if image_ids:
        cursor.executemany(oracle_sql.statement("insert_batch_id"), [(image_id,) for image_id in image_ids])


def stage_batch(cursor: oracledb.Cursor, binds: Sequence[ImageBind]) -> tuple[list[str], list[str]]:
    """Insert the images, find the id-conflicts, stage the other ids: (conflicts, ids to score)."""
    stored = insert_images(cursor, binds)
    conflicts = find_conflicts(cursor, stored)
    skipped = set(conflicts)
    to_score = [bind[0] for bind in binds if bind[0] not in skipped]
    stage_batch_ids(cursor, to_score)
    return conflicts, to_score
