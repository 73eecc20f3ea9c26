"""Kinetica backend pieces that need no server: URL, tables, row conversion, errors, procs."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, ClassVar

import gpudb
import numpy as np
import pytest

from streamscore.backends import BackendURL, ImageBatch, ModelRef, SourceOffset, resolve_backend
from streamscore.backends.kinetica import procs, tables
from streamscore.backends.kinetica.backend import KineticaBackend
from streamscore.backends.kinetica.client import request_timeout_s
from streamscore.backends.kinetica.errors import connection_failure
from streamscore.backends.kinetica.tables import scored_batch
from streamscore.backends.kinetica.train import NEXT_VERSION, resolve_version
from streamscore.backends.sqlfiles import read_sql
from streamscore.errors import ArtifactError, BackendDataError, BackendError, BackendUnavailable, ConfigError
from streamscore.model.artifact import build_artifact


def backend(url: str) -> KineticaBackend:
    return KineticaBackend(BackendURL.parse(url))


def test_registry_and_url_options() -> None:
    assert resolve_backend("kinetica") is KineticaBackend
    b = backend("kinetica://admin:s3cret@db.example:9191?https=1&schema=ss&head_only=1&udf_timeout=30")
    assert (b.head_url, b.schema, b.head_only, b.udf_timeout) == ("https://db.example:9191", "ss", True, 30.0)
    assert "s3cret" not in repr(b) and "s3cret" not in str(b.url)
    default = backend("kinetica://host")
    assert (default.head_url, default.schema, default.head_only) == ("http://host:9191", "streamscore", False)
    assert KineticaBackend.transactional is False and KineticaBackend.name == "kinetica"


@pytest.mark.parametrize("url", ["kinetica://h?schema=a;drop", "kinetica://h?udf_timeout=soon",
                                 "kinetica://h?role=shadow", "kinetica://h?batch_size=10"])
def test_bad_url_options_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        backend(url)


def ddl_columns(table: str) -> list[str]:
    text = read_sql("kinetica", "schema.sql").format(schema="streamscore")
    body = re.search(rf"TABLE IF NOT EXISTS streamscore\.{table}\s*\((.*?)\n\);", text, re.S)
    assert body is not None, table
    names = []
    for line in body.group(1).splitlines():
        line = line.split("--")[0].strip()
        if line.startswith(("PRIMARY KEY", "SHARD KEY")):
            continue
        for part in filter(None, (p.strip() for p in line.split(","))):
            names.append(part.split()[0])
    return names


@pytest.mark.parametrize("table", sorted(tables.TABLES))
def test_mirrored_columns_match_the_ddl(table: str) -> None:
    assert ddl_columns(table) == [c[0] for c in tables.TABLES[table]]


def test_stage_and_predictions_columns_match_the_ddl() -> None:
    assert ddl_columns("prediction_stage") == tables.STAGE_COLUMNS
    assert sorted(ddl_columns("predictions")) == sorted(tables.STAGE_COLUMNS)


def test_every_statement_uses_binds_and_a_valid_schema() -> None:
    statements = tables.schema_statements("streamscore")
    assert len(statements) == 10 and statements[0] == "CREATE SCHEMA IF NOT EXISTS streamscore"
    merge = tables.sql("merge_predictions", "s1")
    assert "s1.predictions" in merge and "$4" in merge and "{" not in merge
    with pytest.raises(ConfigError):
        tables.sql("merge_predictions", "x y")


def make_batch() -> ImageBatch:
    pixels = np.arange(3 * 784, dtype=np.int64).reshape(3, 784).astype(np.uint8)
    return ImageBatch(
        "batch-1", ["a", "b", "a"], pixels, np.array([7, -1, 7], np.int16),
        np.array([1000, 2000, 3000], np.int64),
        [SourceOffset("mnist.images", 0, i) for i in range(3)], {("mnist.images", 0): 3},
    )


def test_image_records_to_binary_and_back() -> None:
    batch = make_batch()
    records = tables.image_records(batch, batch.unique_rows(), "batch-1")
    assert [r[0] for r in records] == ["a", "b"]
    assert records[1][2] is None and records[0][2] == 7  # label -1 → NULL
    encoded = tables.encode_binary(records, tables.IMAGE_COLUMNS)
    schema = tables.record_type(tables.IMAGE_COLUMNS, "images").schema_string
    decoded = gpudb.GPUdbRecord.decode_binary_data(schema, encoded)
    assert decoded[0]["pixels"] == batch.pixels[0].tobytes() and len(decoded[1]["pixels"]) == 784
    assert [d["label"] for d in decoded] == [7, None]
    assert [d["produced_at"] for d in decoded] == [1000, 2000]
    assert {d["batch_id"] for d in decoded} == {"batch-1"}


def test_image_records_reject_oversized_ids() -> None:
    batch = make_batch()
    batch.image_ids[0] = "x" * 129
    with pytest.raises(BackendDataError):
        tables.image_records(batch, [0], "b")


def test_offsets_and_model_rows_round_trip() -> None:
    assert tables.offset_records("g", {("t", 1): 5, ("t", 0): 9}, 77) == [
        ["g", "t", 0, 9, 77], ["g", "t", 1, 5, 77]]
    rng = np.random.default_rng(1)
    art = build_artifact("mlp", 2, [rng.normal(size=(784, 16)).astype(np.float32),
                                    rng.normal(size=(16, 10)).astype(np.float32)],
                         [np.zeros(16, np.float32), np.ones(10, np.float32)], ["relu", "softmax"],
                         canary_pixels=np.zeros((2, 784), np.uint8))
    head = tables.model_record(art, 5)
    layers = tables.layer_records(art)
    tables.encode_binary([head], tables.MODEL_COLUMNS)  # encodes against the mirrored type
    tables.encode_binary(layers, tables.LAYER_COLUMNS)
    back = tables.artifact_from_rows("mlp", 2, [head[2], head[3], head[4], head[5], head[6]],
                                     [r[2:] for r in layers])
    assert back.sha256 == art.sha256 and back.activations == ("relu", "softmax")
    assert back.canary_pixels is not None and back.canary_pixels.shape == (2, 784)
    damaged = [r[2:] for r in layers]
    damaged[1] = [*damaged[1][:5], bytes(len(damaged[1][5]))]
    with pytest.raises(BackendError, match="damaged"):
        tables.artifact_from_rows("mlp", 2, [head[2], head[3], head[4], head[5], head[6]], damaged)


# -- errors ----------------------------------------------------------------------------------
def classify(exc: BaseException) -> type[BaseException]:
    b = backend("kinetica://admin:pw@h")
    with pytest.raises(BackendError) as info, b.translate_errors("testing"):
        raise exc
    return type(info.value)


def wrapped_insertion_failure() -> BaseException:
    try:
        try:
            raise gpudb.GPUdbException("Connection refused by worker")
        except gpudb.GPUdbException as ex:
            raise gpudb.InsertionException(str(ex), []) from None
    except gpudb.InsertionException as exc:
        return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (gpudb.GPUdbHAUnavailableException("Only one cluster in ring; HA failover unavailable"),
     BackendUnavailable),
    (gpudb.GPUdbConnectionException("timed out"), BackendUnavailable),
    (gpudb.GPUdbExitException("shutting down"), BackendUnavailable),
    (gpudb.GPUdbException("Error connecting to 'http://h:9191' due to: [Errno 111] Connection refused"),
     BackendUnavailable),
    (wrapped_insertion_failure(), BackendUnavailable),
    (ConnectionResetError(), BackendUnavailable),
    (gpudb.GPUdbException("Table 'streamscore.images' does not exist"), BackendError),
    (gpudb.GPUdbUnauthorizedAccessException("Unauthorized"), BackendError),
])
def test_error_classification(exc: BaseException, expected: type[BaseException]) -> None:
    assert classify(exc) is expected
    assert connection_failure(exc) is (expected is BackendUnavailable)


def test_unauthorized_is_fatal_and_never_shows_the_password() -> None:
    b = backend("kinetica://admin:pw-123@h")
    with pytest.raises(BackendError) as info, b.translate_errors("connecting"):
        raise gpudb.GPUdbUnauthorizedAccessException("Unauthorized")
    assert info.value.reason == "backend-auth" and "pw-123" not in info.value.message


def test_not_connected_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="not connected"):
        backend("kinetica://h").installed_versions("mlp")


def test_connect_to_nothing_is_retriable() -> None:
    b = backend("kinetica://admin:pw@127.0.0.1:9?head_only=1")
    with pytest.raises(BackendUnavailable) as info:
        b.connect()
    assert "pw" not in info.value.message.replace("kinetica", "")


# -- procs ------------------------------------------------------------------------------------
OK = {"status": "OK", "message": ""}


class FakeDb:
    """Answers the proc endpoints with canned responses."""

    def __init__(self, statuses: list[dict[str, Any]], exists: bool = False) -> None:
        self.statuses, self.exists = statuses, exists
        self.created: list[dict[str, Any]] = []
        self.killed: list[str] = []
        self.executed: list[dict[str, Any]] = []
        self.polls: list[dict[str, str]] = []

    def has_proc(self, proc_name: str) -> dict[str, Any]:
        return {"status_info": OK, "proc_exists": self.exists}

    def create_proc(self, **kwargs: Any) -> dict[str, Any]:
        self.created.append(kwargs)
        self.exists = True
        return {"status_info": OK}

    def execute_proc(self, **kwargs: Any) -> dict[str, Any]:
        self.executed.append(kwargs)
        return {"status_info": OK, "run_id": "7"}

    def show_proc_status(self, run_id: str, options: dict[str, str]) -> dict[str, Any]:
        self.polls.append(options)
        return {"status_info": OK, **self.statuses.pop(0)} if len(self.statuses) > 1 else \
            {"status_info": OK, **self.statuses[0]}

    def kill_proc(self, run_id: str, options: dict[str, str]) -> dict[str, Any]:
        self.killed.append(run_id)
        return {"status_info": OK}


def status(overall: str, **segments: dict[str, Any]) -> dict[str, Any]:
    return {
        "overall_statuses": {"7": overall},
        "statuses": {"7": {s: v["status"] for s, v in segments.items()}},
        "messages": {"7": {s: v.get("message", "") for s, v in segments.items()}},
        "results": {"7": {s: v.get("results", {}) for s, v in segments.items()}},
        "output": {"7": {s: {"stdout": [], "stderr": v.get("stderr", [])} for s, v in segments.items()}},
    }


def test_register_creates_a_content_named_proc_once() -> None:
    db = FakeDb([])
    name = procs.register(db, procs.INFER_UDF, "distributed")
    assert re.fullmatch(r"streamscore_mnist_infer_[0-9a-f]{10}", name)
    assert db.created[0]["files"] == {procs.INFER_UDF: procs.udf_source(procs.INFER_UDF)}
    assert db.created[0]["args"] == [procs.INFER_UDF]
    assert procs.register(db, procs.INFER_UDF, "distributed") == name and len(db.created) == 1


def test_execute_waits_and_sums_segment_results() -> None:
    db = FakeDb([status("running", a={"status": "running"}),
                 status("complete", a={"status": "complete", "results": {"scored": "3"}},
                        b={"status": "complete", "results": {"scored": "4"}})])
    run = procs.execute(db, "p", params={"batch_id": "b"}, inputs=["s.images"],
                        outputs=["s.prediction_stage"], timeout=5)
    assert run.total("scored") == 7 and db.executed[0]["bin_params"] == {}


def test_udf_error_surfaces_its_output_lines() -> None:
    db = FakeDb([status("error", a={"status": "complete"},
                        b={"status": "error", "message": "Traceback",
                           "stderr": ["ValueError: model mlp: layer 0 is missing"]})])
    with pytest.raises(BackendError) as info:
        procs.wait(db, "p", "7", 5, sleep=lambda s: None)
    assert info.value.reason == "udf-failed"
    assert "layer 0 is missing" in info.value.message and "segment b: error" in info.value.message


def test_timeout_kills_only_this_run() -> None:
    db = FakeDb([status("running", a={"status": "running"})])
    ticks = iter(range(100))
    with pytest.raises(BackendUnavailable, match="did not finish"):
        procs.wait(db, "p", "7", 3, sleep=lambda s: None, clock=lambda: float(next(ticks)))
    assert db.killed == ["7"]


def test_server_error_status_is_raised() -> None:
    with pytest.raises(BackendError, match="no such proc"):
        procs.checked({"status_info": {"status": "ERROR", "message": "no such proc"}}, "starting")


def test_model_ref_is_what_predictions_name() -> None:
    assert str(ModelRef("mlp", 3)) == "mlp:v3"


# -- SQL execution and row handling (no server) ------------------------------------------------
def offline_gpudb(calls: list[tuple[str, dict[str, str]]]) -> Any:
    """A real gpudb.GPUdb whose HTTP endpoint is replaced: GPUdb.execute() runs unchanged."""
    db = object.__new__(gpudb.GPUdb)

    def execute_sql(statement: str, options: dict[str, str], **_: Any) -> dict[str, Any]:
        calls.append((statement, dict(options)))
        return {"status_info": OK, "count_affected": 0}

    db.execute_sql = execute_sql  # type: ignore[method-assign]
    return db


def test_binds_of_one_statement_never_reach_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    # GPUdb.execute() stores "query_parameters" in the sql_opts dict it gets; its default is
    # one shared {} -- so the backend must pass a fresh dict every time.
    defaults = gpudb.GPUdb.execute.__defaults__
    calls: list[tuple[str, dict[str, str]]] = []
    b = backend("kinetica://h")
    b._db = offline_gpudb(calls)
    monkeypatch.setattr(procs, "register", lambda db, filename, mode: "p")
    b.init_schema()
    b.init_schema()  # the second run's DDL comes after the first run's purge binds
    ddl = [opts for sql, opts in calls if not sql.startswith("DELETE")]
    purges = [opts for sql, opts in calls if sql.startswith("DELETE")]  # stage and inbox, by age
    assert len(ddl) == 20 and all("query_parameters" not in opts for opts in ddl)
    assert len(purges) == 4 and all(len(json.loads(o["query_parameters"])) == 1 for o in purges)
    assert gpudb.GPUdb.execute.__defaults__ == defaults and defaults is not None and defaults[1] == {}


def test_purge_compares_epoch_milliseconds() -> None:
    assert "LONG(scored_at) < $1" in tables.sql("purge_stage", "s")


def test_a_failed_upsert_drops_the_cached_ingestor() -> None:
    class FailingTable:
        def insert_records(self, records: Any, options: dict[str, str]) -> None:
            assert options == {"update_on_existing_pk": "true"}

        def flush_data_to_server(self) -> None:
            raise gpudb.GPUdbException("Connection refused by worker")

    b = backend("kinetica://h")
    b._tables["images"] = FailingTable()
    with pytest.raises(gpudb.GPUdbException):
        b._upsert("images", [["a"]])
    assert "images" not in b._tables


def test_scored_batch_reports_this_pass_time_and_retries_missing_rows() -> None:
    row = ["a", 3, *([0.1] * 10)]
    scored = scored_batch(["a"], [row], ModelRef("mlp", 1, "shadow"), 1_500)
    assert scored.scored_at.tolist() == [1_500] and scored.predicted.tolist() == [3]
    assert scored.probabilities.shape == (1, 10) and scored.model.role == "shadow"
    with pytest.raises(BackendUnavailable) as missing:
        scored_batch(["a", "b"], [row], ModelRef("mlp", 1), 1_500)
    assert missing.value.reason == "predictions-missing"


class InMemoryKinetica(KineticaBackend):
    """The backend with its own row seams (_query, _upsert, _execute_sql, _score) kept in dicts."""

    def __init__(self) -> None:
        super().__init__(BackendURL.parse("kinetica://h"))
        self._db = object()
        self.rows: dict[str, dict[tuple[Any, ...], list[Any]]] = {}
        self.scored: list[tuple[str, ModelRef]] = []

    KEYS: ClassVar[dict[str, int]] = {"models": 2, "model_layers": 3, "consumer_offsets": 3, "images": 1,
                                      "score_inbox": 2}

    def _upsert(self, name: str, records: Any) -> None:
        table = self.rows.setdefault(name, {})
        for record in records:
            table[tuple(record[: self.KEYS[name]])] = list(record)

    def _query(self, name: str, params: list[Any], ids: Any = ()) -> list[list[Any]]:
        if name == "select_layers":
            return sorted([r[2:] for r in self.rows.get("model_layers", {}).values() if r[:2] == params])
        if name == "select_model":
            row = self.rows.get("models", {}).get(tuple(params))
            return [] if row is None else [[row[2], row[3], row[4], row[5], row[6]]]
        if name == "stored_offsets":
            return [[r[2], r[3]] for r in self.rows.get("consumer_offsets", {}).values() if r[:2] == params]
        if name == "installed_versions":
            return sorted([[r[1]] for r in self.rows.get("models", {}).values() if r[0] == params[0]])
        if name == "select_images":
            images = self.rows.get("images", {})
            return [[r[0], r[1], r[2]] for key in ids if (r := images.get((key,))) is not None]
        if name == "select_predictions":
            batch = [r for r in self.rows.get("images", {}).values() if r[4] == params[0] and r[0] in ids]
            return [[r[0], 1, *([0.1] * 10)] for r in batch]
        raise AssertionError(name)

    def _execute_sql(self, name: str, params: list[Any]) -> int:
        return 0

    def _score(self, inbox: Any, scoring_id: str, model: ModelRef, weights: dict[str, str]) -> None:
        assert {row[1] for row in inbox} == {scoring_id}
        self.scored.append((scoring_id, model))


def test_offsets_never_move_backwards() -> None:
    b = InMemoryKinetica()
    b.store_offsets("g", {("t", 0): 50, ("t", 1): 5})
    b.store_offsets("g", {("t", 0): 10, ("t", 1): 6})
    assert b.stored_offsets("g", "t") == {0: 50, 1: 6}


def test_install_refuses_other_weights_and_scoring_needs_the_version() -> None:
    b = InMemoryKinetica()
    first = build_artifact("mlp", 1, [np.ones((784, 10), np.float32)], [np.zeros(10, np.float32)], ["softmax"])
    other = build_artifact("mlp", 1, [np.full((784, 10), 2, np.float32)], [np.zeros(10, np.float32)], ["softmax"])
    b.install_model(first)
    b.install_model(first)
    with pytest.raises(ArtifactError) as conflict:
        b.install_model(other)
    assert conflict.value.reason == "version-conflict"
    with pytest.raises(ArtifactError) as absent:
        b.write_batch(make_batch(), ModelRef("mlp", 2), "g")
    assert absent.value.reason == "not-installed" and b.scored == [] and "images" not in b.rows
    scored = b.write_batch(make_batch(), ModelRef("mlp", 1, "shadow"), "g")
    ((scoring_id, scored_with),) = b.scored
    assert re.fullmatch(r"[0-9a-f]{32}", scoring_id) and scored_with == ModelRef("mlp", 1, "shadow")
    assert scored.model.role == "shadow"
    with pytest.raises(ArtifactError, match="1 to 64"):
        b.install_model(dataclasses.replace(first, name="x" * 65))


def test_a_reused_id_with_other_content_is_reported_and_never_overwritten() -> None:
    b = InMemoryKinetica()
    b.install_model(build_artifact("mlp", 1, [np.ones((784, 10), np.float32)], [np.zeros(10, np.float32)],
                                   ["softmax"]))
    first = make_batch()  # a (label 7), b (no label)
    b.write_batch(first, ModelRef("mlp", 1), "g")
    stored_before = {key: list(row) for key, row in b.rows["images"].items()}
    pixels = np.stack([first.pixels[0], np.zeros(784, np.uint8), first.pixels[1], first.pixels[0]])
    second = ImageBatch(
        "batch-2", ["a", "b", "c", "d"], pixels, np.array([7, -1, 3, 7], np.int16), np.zeros(4, np.int64),
        [SourceOffset("mnist.images", 0, i) for i in range(3, 7)], {("mnist.images", 0): 7},
    )
    second.pixels[2] = first.pixels[1]
    second.labels[2] = 3
    second.image_ids[2] = "b"  # b again: same pixels, now with a label
    second.image_ids[1] = "x"  # a new id
    second.image_ids[3] = "a"  # a repeated within the batch: first occurrence wins
    scored = b.write_batch(second, ModelRef("mlp", 1), "g")
    assert scored.conflicts == ["b"]
    assert sorted(scored.image_ids) == ["a", "x"]
    assert b.rows["images"][("b",)] == stored_before[("b",)]  # not overwritten
    assert b.rows["images"][("a",)][4] == b.scored[-1][0]  # the replay is re-tagged for scoring
    assert b.stored_offsets("g", "mnist.images") == {0: 7}


def test_only_conflicts_scores_nothing() -> None:
    b = InMemoryKinetica()
    b.install_model(build_artifact("mlp", 1, [np.ones((784, 10), np.float32)], [np.zeros(10, np.float32)],
                                   ["softmax"]))
    batch = make_batch()
    b.write_batch(batch, ModelRef("mlp", 1), "g")
    b.scored.clear()
    batch.labels = np.array([1, 2, 1], np.int16)
    scored = b.write_batch(batch, ModelRef("mlp", 1), "g")
    assert scored.conflicts == ["a", "b"] and scored.image_ids == [] and b.scored == []


def test_conflicting_rows_compare_pixels_and_label() -> None:
    records = [["a", b"\x01" * 784, 7, 0, "B"], ["b", b"\x02" * 784, None, 0, "B"], ["c", b"\x03" * 784, 1, 0, "B"]]
    stored = [["a", b"\x01" * 784, 7], ["b", b"\x02" * 784, 4], ["c", b"\x04" * 784, 1]]
    assert tables.conflicting_rows(records, stored) == {"b", "c"}
    assert "$1, $2, $3" in tables.sql("select_images", "s", 3)


@pytest.mark.parametrize(("timeout_ms", "seconds"), [(60_000, 60), (500, 1), (1_500, 2), (0, None)])
def test_the_client_timeout_is_sent_in_seconds(timeout_ms: int, seconds: int | None) -> None:
    # gpudb hands Options.timeout to requests' post(timeout=…), which is seconds (issue 17 item 1)
    assert request_timeout_s(timeout_ms) == seconds
    assert backend(f"kinetica://h?timeout_ms={timeout_ms}").client_options().timeout == seconds
    assert backend("kinetica://h").client_options().timeout == 60


def test_a_negative_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="timeout_ms"):
        backend("kinetica://h?timeout_ms=-1")


@pytest.mark.parametrize("final", ["complete", "error"])
def test_a_run_is_cleared_once_after_its_final_status_was_read(final: str) -> None:
    # clear_complete on every poll could drop the results of ranks that finished early (issue 17 item 5)
    db = FakeDb([status("running", a={"status": "complete", "results": {"scored": "3"}}, b={"status": "running"}),
                 status("running", a={"status": "complete", "results": {"scored": "3"}}, b={"status": "running"}),
                 status(final, a={"status": "complete", "results": {"scored": "3"}},
                        b={"status": final, "results": {"scored": "4"}})])
    if final == "complete":
        assert procs.wait(db, "p", "7", 5, sleep=lambda s: None).total("scored") == 7
    else:
        with pytest.raises(BackendError):
            procs.wait(db, "p", "7", 5, sleep=lambda s: None)
    assert db.polls == [{}, {}, {}, {"clear_complete": "true"}]


def test_every_attempt_scores_under_a_fresh_id() -> None:
    # attempt 1 tags a and b and fails; a partition is revoked; the retry of a alone must not make
    # the UDF score b as well (issue 17 item 2): each attempt tags its rows with a new scoring id
    b = InMemoryKinetica()
    b.install_model(build_artifact("mlp", 1, [np.ones((784, 10), np.float32)], [np.zeros(10, np.float32)],
                                   ["softmax"]))
    batch = make_batch()
    b.write_batch(batch, ModelRef("mlp", 1), "g")
    retry = batch.subset([0])
    scored = b.write_batch(retry, ModelRef("mlp", 1), "g")
    first_id, retry_id = (scoring_id for scoring_id, _ in b.scored)
    assert first_id != retry_id
    tagged = {key[0]: row[4] for key, row in b.rows["images"].items()}
    assert tagged == {"a": retry_id, "b": first_id}
    assert scored.image_ids == ["a"]


@pytest.mark.parametrize(
    ("overall", "stderr"),
    [
        ("killed", []),
        ("error", ["gpudb.gpudb.GPUdbConnectionException: Error connecting to 'http://head:9191'"]),
        ("error", ["GPUdbHAUnavailableException: Only one cluster in ring; HA failover unavailable"]),
    ],
)
def test_a_killed_or_disconnected_udf_is_retriable(overall: str, stderr: list[str]) -> None:
    # issue 17 item 6: only a UDF that is wrong stops the consumer
    db = FakeDb([status(overall, a={"status": "complete"}, b={"status": overall, "stderr": stderr})])
    with pytest.raises(BackendUnavailable) as info:
        procs.wait(db, "p", "7", 5, sleep=lambda s: None)
    assert info.value.reason == "udf-interrupted" and info.value.retriable


def test_training_refuses_an_installed_version() -> None:
    # issue 17 item 4: the training UDF would overwrite an installed (maybe serving) version
    b = InMemoryKinetica()
    b.install_model(build_artifact("mlp", 1, [np.ones((784, 10), np.float32)], [np.zeros(10, np.float32)],
                                   ["softmax"]))
    with pytest.raises(ArtifactError, match="--version 2") as refused:
        resolve_version(b, "mlp", 1)
    assert refused.value.reason == "version-conflict"
    assert resolve_version(b, "mlp", 2) == 2  # a new version is fine


def test_training_defaults_to_the_next_version() -> None:
    # issue 17 item 4: `train --backend kinetica://…` without --version trains installed max + 1
    b = InMemoryKinetica()
    assert resolve_version(b, "mlp", NEXT_VERSION) == 1
    for version in (1, 4):
        b.install_model(build_artifact("mlp", version, [np.ones((784, 10), np.float32)],
                                       [np.zeros(10, np.float32)], ["softmax"]))
    assert resolve_version(b, "mlp", NEXT_VERSION) == 5
    assert resolve_version(b, "other", NEXT_VERSION) == 1


def test_inbox_rows_encode_against_the_inbox_table() -> None:
    pixels = np.arange(2 * 784).reshape(2, 784).astype(np.uint8)
    records = tables.pixel_records(pixels, "score-1", 5)
    schema = tables.record_type(tables.INBOX_COLUMNS, "score_inbox").schema_string
    decoded = gpudb.GPUdbRecord.decode_binary_data(schema, tables.encode_binary(records, tables.INBOX_COLUMNS))
    assert [d["image_id"] for d in decoded] == ["score-1/0", "score-1/1"]
    assert {d["batch_id"] for d in decoded} == {"score-1"} and decoded[1]["pixels"] == pixels[1].tobytes()


def test_statements_reach_kinetica_without_comments_but_with_the_hint() -> None:
    # issue 17 item 7: comments holding ";", "$1" or apostrophes must not be sent
    from streamscore.backends.sqlfiles import named_statements
    texts = [tables.sql(name, "s", 2) for name in named_statements("kinetica")] + tables.schema_statements("s")
    # string literals ('shadow' in evaluation.sql) are SQL; an apostrophe left over is a comment's
    assert texts and all("--" not in text and "'" not in re.sub(r"'[^'\n]*'", "", text) for text in texts)
    assert all(";" not in text for text in texts)
    assert "/* KI_HINT_UPDATE_ON_EXISTING_PK */" in tables.sql("merge_predictions", "s")


def test_select_predictions_is_a_primary_key_lookup() -> None:
    statement = tables.sql("select_predictions", "s", 3, first=5)
    assert "image_id IN ($5, $6, $7)" in statement and "batch_id = $1" in statement


def test_strings_longer_than_their_column_are_refused_before_writing() -> None:
    # kinetica_proc and Kinetica truncate a charN value silently (issue 17 item 7)
    b = InMemoryKinetica()
    art = build_artifact("mlp", 1, [np.ones((784, 10), np.float32)], [np.zeros(10, np.float32)], ["softmax"])
    with pytest.raises(ArtifactError, match="model_name") as long_name:
        b._install_model(dataclasses.replace(art, name="n" * 65))  # past the shared name check
    assert long_name.value.reason == "bad-name" and "models" not in b.rows and "model_layers" not in b.rows
    with pytest.raises(ConfigError, match="consumer_group"):
        b.store_offsets("g" * 257, {("t", 0): 1})
    b.store_offsets("g" * 256, {("t", 0): 1})
    assert tables.oversized([["é" * 33]], [["x", "string", "char64"]])  # bytes, not characters
