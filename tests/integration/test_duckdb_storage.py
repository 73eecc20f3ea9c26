"""DuckDB storage: pixels as one BLOB, the images_u8 view, and files written with UTINYINT[784]."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np

from streamscore.backends import Backend, ImageBatch, ModelRef, SourceOffset, open_backend
from streamscore.models import bundled_model
from streamscore.shared.mnist import MnistSplit


def _batch(split: MnistSplit, rows: range, ids: list[str] | None = None) -> ImageBatch:
    return ImageBatch(
        batch_id=f"b{rows.start}",
        image_ids=ids or [f"t10k-{i:05d}" for i in rows],
        pixels=split.images[rows.start:rows.stop],
        labels=split.labels[rows.start:rows.stop].astype(np.int16),
        produced_at=np.zeros(len(rows), np.int64),
        sources=[SourceOffset("images", 0, i) for i in rows],
        offsets={("images", 0): rows.stop},
    )


@contextmanager
def _serving_v1(path: Path, split: MnistSplit) -> Iterator[tuple[Backend, Callable[[], None], Callable[[], int]]]:
    """A backend on a new file serving bundled v1; a writer of 2,000 images under new ids (≈ 1.7 MB of
    write-ahead log); the log's size (0 once a checkpoint has removed it)."""
    model, wal, tags = bundled_model(1), path.with_name(path.name + ".wal"), itertools.count()
    with open_backend(f"duckdb:///{path}") as backend:
        backend.init_schema()
        backend.install_model(model)

        def write() -> None:
            k = next(tags)
            backend.write_batch(_batch(split, range(2_000), [f"w{k}-{i}" for i in range(2_000)]),
                                ModelRef(model.name, model.version), "g")

        yield backend, write, lambda: wal.stat().st_size if wal.exists() else 0


def _store(path: Path, batches: list[ImageBatch]) -> None:
    """Write ``batches`` through the DuckDB backend into a new file at ``path``, scored by bundled v1."""
    model = bundled_model(1)
    with open_backend(f"duckdb:///{path}") as backend:
        backend.init_schema()
        backend.install_model(model)
        for batch in batches:
            backend.write_batch(batch, ModelRef(model.name, model.version), "g")


def test_pixels_are_stored_as_the_wire_bytes_and_shown_as_lists(tmp_path: Path, test_split: MnistSplit) -> None:
    path = tmp_path / "s.duckdb"
    _store(path, [_batch(test_split, range(20))])
    with duckdb.connect(str(path)) as con:
        raw = con.execute("SELECT pixels FROM images ORDER BY image_id").fetchall()
        lists = con.execute("SELECT pixels FROM images_u8 ORDER BY image_id").fetchall()
    assert [bytes(b) for (b,) in raw] == [test_split.images[i].tobytes() for i in range(20)]
    assert [list(p) for (p,) in lists] == [test_split.images[i].tolist() for i in range(20)]


def test_a_file_with_pixel_lists_is_migrated_once(tmp_path: Path, test_split: MnistSplit) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # the images table as released before pixels became a BLOB
        con.execute("CREATE TABLE images (image_id VARCHAR PRIMARY KEY, pixels UTINYINT[784] NOT NULL, "
                    "label TINYINT, produced_at BIGINT, src_topic VARCHAR, src_partition INTEGER, "
                    "src_offset BIGINT, batch_id VARCHAR, ingested_at TIMESTAMP DEFAULT current_timestamp)")
        for i in range(3):
            con.execute("INSERT INTO images (image_id, pixels, label) VALUES (?, ?, ?)",
                        [f"old-{i}", test_split.images[i].tolist(), int(test_split.labels[i])])
    model = bundled_model(1)
    with open_backend(f"duckdb:///{path}") as backend:
        backend.init_schema()
        backend.init_schema()  # the second run finds a BLOB and leaves it alone
        backend.install_model(model)
        # the old rows are still there, and a replay of one of them is absorbed, not a conflict
        replay = _batch(test_split, range(3), ids=[f"old-{i}" for i in range(3)])
        scored = backend.write_batch(replay, ModelRef(model.name, model.version), "g")
    assert scored.conflicts == []
    assert sorted(scored.image_ids) == ["old-0", "old-1", "old-2"]
    with duckdb.connect(str(path)) as con:
        stored = con.execute("SELECT image_id, pixels FROM images ORDER BY image_id").fetchall()
    assert [(i, bytes(b)) for i, b in stored] == [(f"old-{n}", test_split.images[n].tobytes()) for n in range(3)]


def test_images_are_written_in_small_row_groups(tmp_path: Path, test_split: MnistSplit) -> None:
    # a checkpoint re-compresses the row group being filled: small groups keep it short (decisions.md)
    from streamscore.backends.duckdb.connection import ROW_GROUP_SIZE

    path = tmp_path / "g.duckdb"
    # 20,000 rows: more than one small group, less than one default group (122,880)
    parts = [range(k % 5 * 2_000, k % 5 * 2_000 + 2_000) for k in range(10)]
    _store(path, [_batch(test_split, rows, [f"g{k}-{i}" for i in rows]) for k, rows in enumerate(parts)])
    with duckdb.connect(str(path), read_only=True) as con:
        groups = [rows for (rows,) in con.execute(
            "SELECT sum(count) FROM pragma_storage_info('images') "
            "WHERE column_name = 'image_id' AND segment_type <> 'VALIDITY' GROUP BY row_group_id").fetchall()]
    assert sum(groups) == 20_000
    assert len(groups) >= 2 and max(groups) <= ROW_GROUP_SIZE


def test_no_checkpoint_falls_in_a_model_install_or_the_batch_after_it(tmp_path: Path, test_split: MnistSplit) -> None:
    # a checkpoint truncates the write-ahead log; one in a swap's gap adds to the swap (decisions.md)
    with _serving_v1(tmp_path / "c.duckdb", test_split) as (backend, write, wal_bytes):
        while wal_bytes() < 12 << 20:  # 2,000 images ≈ 1.7 MB of log: the next few cross 16 MB
            write()
        backend.install_model(bundled_model(2))  # a swap: the install and the next batches write on
        for _ in range(4):
            write()
        deferred = wal_bytes()
        backend.maintain()  # a gap without a swap: the next commit past the threshold checkpoints
        write()
        after = wal_bytes()
    assert deferred > 16 << 20
    assert after < 4 << 20


def test_checkpoints_held_off_by_a_version_installed_ahead_and_never_served_come_back(
        tmp_path: Path, test_split: MnistSplit) -> None:
    # e.g. published as a shadow and withdrawn at once: the loop never installs it (decisions.md)
    from streamscore.backends.duckdb.connection import QUIET_GAPS_BEFORE_CHECKPOINTS

    with _serving_v1(tmp_path / "q.duckdb", test_split) as (backend, write, wal_bytes):
        backend.maintain()
        backend.session().install_model(bundled_model(2))  # ahead, on the second connection
        while wal_bytes() < 20 << 20:  # past the usual threshold: held off
            write()
        for _ in range(QUIET_GAPS_BEFORE_CHECKPOINTS - 1):
            backend.maintain()
        write()
        assert wal_bytes() > 20 << 20, "still held off: the loop's switch normally comes first"
        backend.maintain()
        write()
        assert wal_bytes() < 4 << 20
