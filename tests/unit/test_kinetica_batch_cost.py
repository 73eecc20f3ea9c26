"""A batch costs the same at any table size (issue 17 item 3), shown by work done, not time.

The backend runs against rows kept in dicts (its own seams: ``_upsert``, ``_query``,
``_execute_sql``) and a proc endpoint that does what Kinetica does with ``execute_proc``: it
copies the whole input table, hash-splits it over data segments and runs the real UDF
(``udfs/mnist_infer.py``, through tests/kinetica_harness.py) once per segment. What the UDF was
given and read is counted: with 10 thousand or 1 million stored images it is the batch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kinetica_harness as harness
from streamscore.backends import BackendURL, ImageBatch, ModelRef, SourceOffset
from streamscore.backends.kinetica import KineticaBackend
from streamscore.errors import BackendError
from streamscore.models import bundled_model

OK = {"status": "OK", "message": ""}
INFER = harness.load_udf("mnist_infer.py")


class StoredImages:
    """``images`` holding ``n`` generated rows (ids old-0000000 …) plus whatever is upserted;
    a scan would have to walk all of them, a primary-key lookup touches one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.upserted: dict[tuple[Any, ...], list[Any]] = {}

    def get(self, key: tuple[Any, ...]) -> list[Any] | None:
        if key in self.upserted:
            return self.upserted[key]
        image_id = str(key[0])
        if image_id.startswith("old-") and int(image_id[4:]) < self.n:
            return [image_id, bytes([int(image_id[4:]) % 256]) * 784, 1, 0, "an-old-batch"]
        return None

    def __setitem__(self, key: tuple[Any, ...], row: list[Any]) -> None:
        self.upserted[key] = row

    def values(self) -> Iterator[list[Any]]:
        for i in range(self.n):
            row = self.get((f"old-{i:07d}",))
            assert row is not None
            yield row
        yield from self.upserted.values()

    def __len__(self) -> int:
        return self.n + len(self.upserted)


class ProcEndpoint:
    """``execute_proc`` as Kinetica runs a distributed proc: whole input tables, split, UDF per segment."""

    def __init__(self, backend: DictKinetica, folder: Path) -> None:
        self.backend, self.folder = backend, folder
        self.runs: list[list[harness.UdfRun]] = []
        self.params: list[dict[str, str]] = []

    def has_proc(self, proc_name: str) -> dict[str, Any]:
        return {"status_info": OK, "proc_exists": True}

    def execute_proc(self, *, proc_name: str, params: dict[str, str], input_table_names: list[str],
                     input_column_names: dict[str, list[str]], output_table_names: list[str],
                     **_: Any) -> dict[str, Any]:
        inputs = []
        for qualified in input_table_names:
            table = self.backend.rows[qualified.split(".")[1]]
            columns = [c for c in harness.INFER_INPUT if c[0] in input_column_names[qualified]]
            position = {"image_id": 0, "batch_id": 1, "pixels": 2} if qualified.endswith("score_inbox") \
                else {"image_id": 0, "pixels": 1, "batch_id": 4}
            rows = list(table.values())
            inputs.append(harness.Table(qualified, columns, {
                name: [row[position[name]] for row in rows] for name, _ in columns}))
        (stage,) = output_table_names
        runs = harness.run_distributed(
            INFER.main, self.folder / f"run{len(self.runs)}", params=params, inputs=inputs,
            outputs=[harness.Table(stage, harness.INFER_OUTPUT)], segments=2,
        )
        self.runs.append(runs)
        self.params.append(params)
        for run in runs:
            out = run.outputs[stage]
            self.backend.stage.extend(
                [out[name][i] for name, _ in harness.INFER_OUTPUT] for i in range(len(out["image_id"])))
        return {"status_info": OK, "run_id": str(len(self.runs))}

    def show_proc_status(self, run_id: str, options: dict[str, str]) -> dict[str, Any]:
        runs = self.runs[int(run_id) - 1]
        return {"status_info": OK, "overall_statuses": {run_id: "complete"},
                "statuses": {run_id: {f"s{i}": "complete" for i in range(len(runs))}},
                "results": {run_id: {f"s{i}": run.results for i, run in enumerate(runs)}}}

    def rows_read(self, run: int) -> tuple[int, int]:
        """(rows copied into the run's segments, rows the UDF instances scanned) of run ``run``."""
        runs = self.runs[run]
        return sum(r.rows_in for r in runs), sum(int(r.results["read"]) for r in runs)


class DictKinetica(KineticaBackend):
    """The backend over dict tables; ``stored`` images are in ``images`` before the first batch."""

    KEYS: ClassVar[dict[str, int]] = {
        "models": 2, "model_layers": 3, "consumer_offsets": 3, "score_inbox": 2, "predictions": 4}

    def __init__(self, stored: int, folder: Path) -> None:
        super().__init__(BackendURL.parse("kinetica://h?schema=s"))
        self.endpoint = ProcEndpoint(self, folder)
        self._db = self.endpoint
        self.rows: dict[str, Any] = {name: {} for name in self.KEYS}
        self.rows["images"] = StoredImages(stored)
        self.stage: list[list[Any]] = []
        self.queries: list[str] = []

    def _upsert(self, name: str, records: Any) -> None:
        width = self.KEYS.get(name, 1)
        for record in records:
            self.rows[name][tuple(record[:width])] = list(record)

    def _query(self, name: str, params: list[Any], ids: Any = ()) -> list[list[Any]]:
        self.queries.append(name)
        rows = self.rows
        if name == "select_model":
            row = rows["models"].get(tuple(params))
            return [] if row is None else [[row[2], row[3], row[4], row[5], row[6]]]
        if name == "select_layers":
            return sorted(r[2:] for r in rows["model_layers"].values() if r[:2] == params)
        if name == "stored_offsets":
            return [[r[2], r[3]] for r in rows["consumer_offsets"].values() if r[:2] == params]
        if name == "select_images":
            return [[r[0], r[1], r[2]] for i in ids if (r := rows["images"].get((i,))) is not None]
        if name == "select_predictions":
            batch_id, model, version, role = params
            found = [rows["predictions"].get((i, model, version, role)) for i in ids]
            return [[r[0], r[6], *r[7:17]] for r in found if r is not None and r[1] == batch_id]
        raise AssertionError(f"unexpected query {name}")

    def _execute_sql(self, name: str, params: list[Any]) -> int:
        if name == "merge_predictions":
            for row in self.stage:
                if row[1:5] == params:  # batch, name, version, role
                    self.rows["predictions"][(row[0], *row[2:5])] = row
        elif name == "delete_stage":
            self.stage = [row for row in self.stage if row[1] != params[0]]
        elif name == "delete_inbox":
            inbox = self.rows["score_inbox"]
            self.rows["score_inbox"] = {k: r for k, r in inbox.items() if r[1] != params[0]}
        else:
            raise AssertionError(f"unexpected statement {name}")
        return 0


def new_batch(batch_id: str, first: int, n: int) -> ImageBatch:
    rng = np.random.default_rng(first)
    return ImageBatch(
        batch_id, [f"new-{first + i:07d}" for i in range(n)], rng.integers(0, 256, (n, 784), dtype=np.uint8),
        np.full(n, 3, np.int16), np.zeros(n, np.int64),
        [SourceOffset("mnist.images", 0, first + i) for i in range(n)], {("mnist.images", 0): first + n},
    )


@pytest.mark.parametrize("stored", [10_000, 1_000_000])
def test_a_batch_reads_only_itself_at_any_table_size(stored: int, tmp_path: Path) -> None:
    b = DictKinetica(stored, tmp_path)
    artifact = bundled_model(1)
    b.install_model(artifact)
    assert len(b.rows["images"]) == stored
    first = b.write_batch(new_batch("k-1", 0, 100), ModelRef(artifact.name, 1), "g")
    second = b.write_batch(new_batch("k-2", 100, 100), ModelRef(artifact.name, 1), "g")
    # each run copied and scanned exactly its batch, over both segments: not the stored images,
    # not the first batch (the inbox is emptied after every run)
    assert [b.endpoint.rows_read(run) for run in (0, 1)] == [(100, 100), (100, 100)]
    assert all(r.rows_in > 0 for run in b.endpoint.runs for r in run)
    assert b.rows["score_inbox"] == {} and b.stage == []
    # the weights travel with the run (no rank reads them back); read from the tables once
    assert all(p["sha256"] == artifact.sha256 and p["layers"] for p in b.endpoint.params)
    assert b.queries.count("select_layers") == 1
    want = artifact.forward(new_batch("k-2", 100, 100).pixels)
    assert np.abs(second.probabilities - want).max() <= 1e-5
    assert first.image_ids[0] == "new-0000000" and len(b.rows["images"]) == stored + 200


def test_a_replayed_old_image_is_scored_from_the_inbox_too(tmp_path: Path) -> None:
    b = DictKinetica(50, tmp_path)
    artifact = bundled_model(1)
    b.install_model(artifact)
    old = b.rows["images"].get(("old-0000007",))
    batch = ImageBatch("k-3", ["old-0000007"], np.frombuffer(old[1], np.uint8).reshape(1, 784),
                       np.array([1], np.int16), np.zeros(1, np.int64), [SourceOffset("mnist.images", 0, 0)],
                       {("mnist.images", 0): 1})
    scored = b.write_batch(batch, ModelRef(artifact.name, 1), "g")
    assert scored.image_ids == ["old-0000007"] and scored.conflicts == []
    assert b.endpoint.rows_read(0) == (1, 1)


class FailingEndpoint(ProcEndpoint):
    """A run that fails in every segment (the UDF raised)."""

    def show_proc_status(self, run_id: str, options: dict[str, str]) -> dict[str, Any]:
        return {"status_info": OK, "overall_statuses": {run_id: "error"},
                "statuses": {run_id: {"s0": "error"}}, "messages": {run_id: {"s0": "ValueError: boom"}}}


def test_a_failed_run_leaves_nothing_in_the_inbox(tmp_path: Path) -> None:
    b = DictKinetica(10, tmp_path)
    b.install_model(bundled_model(1))
    b.endpoint = FailingEndpoint(b, tmp_path)
    b._db = b.endpoint
    with pytest.raises(BackendError, match="boom") as failed:
        b.write_batch(new_batch("k-4", 0, 20), ModelRef(bundled_model(1).name, 1), "g")
    assert failed.value.reason == "udf-failed"
    assert b.endpoint.rows_read(0) == (20, 20)  # the batch was in the inbox for the run ...
    assert b.rows["score_inbox"] == {}  # ... and is not read again by the next one
