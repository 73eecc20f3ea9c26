"""Oracle backend without a server: URLs, binds, SQL files, error codes, model rows, the
GEMM layout, and the order of calls in a batch (against a fake python-oracledb connection).

Errors are real python-oracledb exception objects, built the way the driver builds them
(``oracledb.errors._Error``), so code, full_code, isrecoverable and the exception class
are the driver's own.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import oracledb
import pytest
from oracledb import errors as oracledb_errors

from oracle_fakes import (
    FakeConnection,
    FakeCursor,
    dpy_exception,
    make_batch,
    ora,
    ora_exception,
    prediction_rows,
    rows_from_binds,
)
from streamscore.backends import (
    BackendURL,
    ModelRef,
    open_backend,
)
from streamscore.backends.oracle import OracleBackend
from streamscore.backends.oracle import errors as oracle_errors
from streamscore.backends.oracle import package as oracle_package
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.backends.sqlfiles import named_statements, read_sql, script, split_statements
from streamscore.errors import (
    ArtifactError,
    BackendDataError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    ErrorKind,
    MissingDependencyError,
)
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import ACTIVATIONS

# -- helpers --------------------------------------------------------------------------------


def make_artifact(sizes: tuple[int, ...] = (784, 32, 10), seed: int = 7, version: int = 1,
                  activations: tuple[str, ...] = ("sigmoid", "softmax")) -> ModelArtifact:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.1, (a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    biases = [rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]]
    canary = rng.integers(0, 256, (3, 784), dtype=np.uint8)
    return build_artifact("mlp", version, weights, biases, activations, canary_pixels=canary)


# -- URL → connect arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "dsn", "options", "timeout"),
    [
        ("oracle://app:pw@db.example:1521/FREEPDB1", "db.example:1521/FREEPDB1", {}, 0),
        ("oracle://app@db/ORCLPDB", "db:1521/ORCLPDB", {}, 0),
        ("oracle://app:pw@[::1]:1522/FREEPDB1", "[::1]:1522/FREEPDB1", {}, 0),
        ("oracle://app:pw@h:2484/svc?protocol=tcps", "tcps://h:2484/svc", {}, 0),
        (
            "oracle://app:pw@h/svc?tcp_connect_timeout=5&expire_time=2&call_timeout=30000",
            "h:1521/svc", {"tcp_connect_timeout": 5.0, "expire_time": 2}, 30000,
        ),
    ],
)
def test_parse_target(url: str, dsn: str, options: dict[str, object], timeout: int) -> None:
    target = oracle_sql.parse_target(BackendURL.parse(url))
    assert (target.user, target.dsn, target.connect_options, target.call_timeout_ms) == (
        "app", dsn, options, timeout,
    )
    assert "pw" not in repr(target)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("oracle://db:1521/FREEPDB1", "names no user"),
        ("oracle://app@db:1521/", "service name"),
        ("oracle://app:secret@db/svc?colour=blue", "unknown option 'colour'"),
        ("oracle://app:secret@db/svc?expire_time=soon", "is not a int"),
        ("oracle://app:secret@db/svc?protocol=udp", "use tcp or tcps"),
    ],
)
def test_parse_target_rejects(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        oracle_sql.parse_target(BackendURL.parse(url))
    assert "secret" not in str(caught.value)


def test_password_from_url_then_env() -> None:
    env = {oracle_sql.PASSWORD_ENV: "from-env"}
    assert oracle_sql.resolve_password(BackendURL.parse("oracle://a:from-url@h/s"), env) == "from-url"
    assert oracle_sql.resolve_password(BackendURL.parse("oracle://a@h/s"), env) == "from-env"
    with pytest.raises(ConfigError, match=oracle_sql.PASSWORD_ENV):
        oracle_sql.resolve_password(BackendURL.parse("oracle://a@h/s"), {})


@pytest.mark.parametrize(
    ("query", "onnx"),
    [
        ("", False), ("?scorer=plsql", False), ("?scorer=onnx", True), ("?scorer=ONNX", True),
        ("?onnx=1", True), ("?onnx=0", False),  # the deprecated alias
        ("?scorer=onnx&onnx=1", True), ("?scorer=plsql&onnx=0", False),
    ],
)
def test_scorer_option(query: str, onnx: bool) -> None:
    assert oracle_sql.parse_target(BackendURL.parse(f"oracle://a@h/s{query}")).onnx is onnx
    assert OracleBackend(BackendURL.parse(f"oracle://a@h/s{query}"))._target.onnx is onnx


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("?scorer=udf", "scorer='udf' in 'oracle://a@h/s?scorer=udf': use plsql or onnx"),
        ("?scorer=sql", "use plsql or onnx"),
        ("?onnx=2", "onnx=2 in 'oracle://a@h/s?onnx=2': use 0 or 1 (deprecated: write scorer=onnx)"),
        ("?scorer=plsql&onnx=1", "disagree: keep scorer=… only"),
        ("?scorer=onnx&onnx=0", "disagree"),
    ],
)
def test_scorer_option_rejects(query: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as failure:
        oracle_sql.parse_target(BackendURL.parse(f"oracle://a@h/s{query}"))
    assert fragment in failure.value.message


def test_the_settings_wide_duckdb_scorer_never_reaches_oracle() -> None:
    from streamscore.backends import option_defaults
    from streamscore.shared.config import Settings

    for scorer in ("udf", "sql"):
        defaults = option_defaults(Settings(duckdb_scorer=scorer))
        backend = open_backend("oracle://app@db:1521/FREEPDB1", defaults=defaults)
        assert "scorer" not in backend.url.options and not backend._target.onnx  # type: ignore[attr-defined]
        onnx = open_backend("oracle://app@db:1521/FREEPDB1?scorer=onnx", defaults=defaults)
        assert onnx._target.onnx  # type: ignore[attr-defined]


def test_registry_builds_backend_and_refuses_unknown_options() -> None:
    backend = open_backend("oracle://app:hunter2@db:1521/FREEPDB1", defaults={"duckdb": {"scorer": "sql"}})
    assert isinstance(backend, OracleBackend)
    assert (backend.name, backend.extra, backend.schemes) == ("oracle", "oracle", ("oracle",))
    assert "hunter2" not in repr(backend)
    with pytest.raises(ConfigError, match=r"role.*valid options for oracle: call_timeout"):
        open_backend("oracle://a@h/s?role=shadow")
    with pytest.raises(TypeError):
        OracleBackend(BackendURL.parse("oracle://a@h/s"), role="shadow")  # type: ignore[call-arg]


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamscore.backends import resolve_backend

    for module in [name for name in sys.modules if name.startswith("streamscore.backends.oracle")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "oracledb", None)  # as if not installed
    resolve_backend.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install 'streamscore\[oracle\]'"):
            resolve_backend("oracle")
    finally:
        resolve_backend.cache_clear()


# -- binds ------------------------------------------------------------------------------------


def test_image_binds_are_784_raw_bytes_with_null_labels() -> None:
    batch = make_batch(["a", "b", "a", "c"])
    rows = batch.unique_rows()
    binds = oracle_sql.image_binds(batch, rows)
    assert rows == [0, 1, 3]
    assert [bind[0] for bind in binds] == ["a", "b", "c"]
    for bind, row in zip(binds, rows, strict=True):
        _image_id, pixels, label, produced_at, batch_id = bind
        assert isinstance(pixels, bytes) and len(pixels) == 784
        assert pixels == batch.pixels[row].tobytes()
        assert label == (None if batch.labels[row] < 0 else int(batch.labels[row]))
        assert (produced_at, batch_id) == (1_700_000_000_000, "b-1")
        assert type(produced_at) is int
    assert binds[0][2] is None  # row 0 had label -1


def test_image_binds_reject_wrong_shape() -> None:
    batch = make_batch(["a"])
    batch.pixels = np.zeros((1, 28, 28), np.uint8)
    with pytest.raises(BackendError, match="not \\(n, 784\\)"):
        oracle_sql.image_binds(batch, [0])


def test_offset_binds_sorted() -> None:
    binds = oracle_sql.offset_binds("g", {("t", 2): 9, ("a", 0): 1, ("t", 0): 5})
    assert binds == [("g", "a", 0, 1), ("g", "t", 0, 5), ("g", "t", 2, 9)]


def test_scored_batch_orders_rows_and_reads_float32_exactly() -> None:
    probs = np.random.default_rng(1).random((3, 10)).astype(np.float32)
    rows = [("c", 2, probs[2].astype("<f4").tobytes()), ("a", 0, probs[0].tobytes()),
            ("b", 1, probs[1].tobytes())]
    scored = oracle_sql.scored_batch(["a", "b", "c"], rows, ModelRef("mlp", 3), 99)
    assert scored.predicted.tolist() == [0, 1, 2]
    assert scored.scored_at.tolist() == [99, 99, 99]  # this pass's time, not the stored one
    assert scored.probabilities.dtype == np.float32
    assert np.array_equal(scored.probabilities, probs)
    # a row taken over by another consumer: retried, never dropped
    with pytest.raises(BackendUnavailable, match="no mlp:v3 champion prediction") as failure:
        oracle_sql.scored_batch(["a", "z"], rows, ModelRef("mlp", 3), 99)
    assert failure.value.reason == "predictions-missing"


# -- SQL files --------------------------------------------------------------------------------


def test_schema_splits_into_plain_statements() -> None:
    statements = split_statements(read_sql("oracle", "schema.sql"))
    tables = [s.split()[2] for s in statements if s.upper().startswith("CREATE TABLE")]
    assert tables == ["mnist_images", "model_versions", "model_layers", "active_models", "model_lifecycle",
                      "mnist_predictions", "consumer_offsets", "schema_objects"]
    for statement in statements:
        assert not statement.rstrip().endswith(";"), statement[:40]
        assert "--" not in statement
    predictions = next(s for s in statements if "CREATE TABLE mnist_predictions" in s)
    assert "PRIMARY KEY (image_id, model_name, model_version, role)" in predictions
    images = next(s for s in statements if "CREATE TABLE mnist_images" in s)
    assert "pixels       RAW(784)" in images


def test_package_file_holds_two_whole_plsql_units() -> None:
    spec, body = split_statements(read_sql("oracle", oracle_sql.PACKAGE_FILE))
    assert spec.startswith("CREATE OR REPLACE PACKAGE mnist_scorer")
    assert body.startswith("CREATE OR REPLACE PACKAGE BODY mnist_scorer")
    for unit in (spec, body):
        assert unit.endswith("END mnist_scorer;")
        assert unit.count("BEGIN") <= unit.count("END")
    # the pieces the design asks for are all there
    for needle in ("UTL_NLA.BLAS_GEMM", "FORALL", "BULK COLLECT", "UTL_RAW.LITTLE_ENDIAN",
                   "'sigmoid'", "'relu'", "'tanh'", "'softmax'", "'identity'"):
        assert needle in body, needle
    assert "SERIALLY_REUSABLE" not in spec + body  # would reload the weights on every call


def test_dml_uses_binds_and_known_tables() -> None:
    schema = read_sql("oracle", "schema.sql")
    tables = set(re.findall(r"CREATE (?:GLOBAL TEMPORARY )?TABLE (\w+)", schema))
    for name, found in named_statements("oracle").items():
        text = found.text
        if not re.match(r"\s*(SELECT|MERGE|INSERT)", text):
            continue
        used = set(re.findall(r"(?:FROM|INTO|JOIN)\s+(\w+)", text)) - {"dual", "user_objects",
                                                                      "user_errors", "user_source",
                                                                      "user_mining_models"}
        assert used <= tables, (name, used - tables)
        # values are binds, never formatted in; the ONNX statement takes generated identifiers only
        assert "{" not in re.sub(r"\{(model|using|attributes)\}", "", text) if name.startswith("onnx_") \
            else "{" not in text, name
        # select_conflicts joins two tables only; evaluation.sql is bind-free, for the DBA's console
        assert ":1" in text or name == "select_conflicts" or name.startswith("evaluation_"), name


def test_create_user_script_is_least_privilege() -> None:
    text = read_sql("oracle", "00_create_user.sql")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    grants = re.findall(r"GRANT (.+?) TO", code, flags=re.S)
    assert grants == ["CREATE SESSION, CREATE TABLE, CREATE PROCEDURE"]
    for forbidden in ("ANY", "DBA", "RESOURCE", "DB_DEVELOPER_ROLE", "UNLIMITED"):
        assert forbidden not in code.upper().replace("&APP_USER", ""), forbidden
    assert 'IDENTIFIED BY "&app_password"' in code  # a placeholder, never a literal password
    assert "QUOTA 2G ON users" in code


def test_create_user_script_does_not_echo_the_password() -> None:
    text = read_sql("oracle", "00_create_user.sql")
    # with VERIFY ON (the default) SQL*Plus prints each line before/after substitution,
    # i.e. the password in clear text
    assert text.index("SET VERIFY OFF") < text.index("ACCEPT app_password")


#: Oracle SQL reserved words (V$RESERVED_WORDS.RESERVED = 'Y'; SQL Language Reference,
#: "Oracle SQL Reserved Words"). As a bind name they fail with ORA-01745, as a column
#: name with ORA-00904. Plus keywords that are unsafe or confusing as bind names
#: (OFFSET, PARTITION, ROLE, TYPE, ...), which the project avoids altogether.
_RESERVED_TEXT = """
ACCESS ADD ALL ALTER AND ANY AS ASC AUDIT BETWEEN BY CHAR CHECK CLUSTER COLUMN COLUMN_VALUE
COMMENT COMPRESS CONNECT CREATE CURRENT DATE DECIMAL DEFAULT DELETE DESC DISTINCT DROP ELSE
EXCLUSIVE EXISTS FILE FLOAT FOR FROM GRANT GROUP HAVING IDENTIFIED IMMEDIATE IN INCREMENT
INDEX INITIAL INSERT INTEGER INTERSECT INTO IS LEVEL LIKE LOCK LONG MAXEXTENTS MINUS MLSLABEL
MODE MODIFY NESTED_TABLE_ID NOAUDIT NOCOMPRESS NOT NOWAIT NULL NUMBER OF OFFLINE ON ONLINE
OPTION OR ORDER PCTFREE PRIOR PRIVILEGES PUBLIC RAW RENAME RESOURCE REVOKE ROW ROWID ROWNUM
ROWS SELECT SESSION SET SHARE SIZE SMALLINT START SUCCESSFUL SYNONYM SYSDATE TABLE THEN TO
TRIGGER UID UNION UNIQUE UPDATE USER VALIDATE VALUES VARCHAR VARCHAR2 VIEW WHENEVER WHERE WITH
"""
ORACLE_RESERVED = frozenset(_RESERVED_TEXT.split())
UNSAFE_BIND_NAMES = ORACLE_RESERVED | {
    "BEGIN", "END", "OFFSET", "PARTITION", "ROLE", "TYPE", "KEY", "LIMIT", "FETCH", "SEQUENCE",
    "TIMESTAMP", "INTERVAL", "DAY", "YEAR", "MONTH", "HOUR", "MINUTE", "SECOND", "VALUE",
}


def bind_names(sql: str) -> list[str]:
    """Bind names as python-oracledb's thin parser finds them: not in '...' strings,
    "..." identifiers or comments, a colon followed by a name or digits (not ':=')."""
    names: list[str] = []
    scrubbed = re.sub(r"'[^']*'|\"[^\"]*\"|--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)
    for match in re.finditer(r":\s*([A-Za-z][A-Za-z0-9_$#]*|[0-9]+)", scrubbed):
        names.append(match.group(1).upper())
    return names


def oracle_statements() -> list[tuple[str, str]]:
    """(where, text) of every statement the backend sends: oracle_sql constants and sql/oracle."""
    found = [(name, found.text) for name, found in named_statements("oracle").items()]
    for file in ("schema.sql", oracle_sql.PACKAGE_FILE):
        found += [(file, text) for text in split_statements(read_sql("oracle", file))]
    return found


def test_bind_names_are_not_reserved_words() -> None:
    statements = oracle_statements()
    assert any(where == "insert_image" for where, _ in statements)
    for where, text in statements:
        names = bind_names(text)
        if re.match(r"\s*CREATE", text, re.I):
            # DDL and PL/SQL units take no binds; a ':name' in a unit is PLS-00049
            assert names == [], (where, names)
            continue
        unsafe = sorted(set(names) & UNSAFE_BIND_NAMES)
        assert not unsafe, (where, unsafe)
    assert bind_names("SELECT :size, :1, ':x', \":y\" FROM t -- :z\n WHERE a := 1") == ["SIZE", "1"]


def test_column_names_are_not_reserved_words() -> None:
    for statement in split_statements(read_sql("oracle", "schema.sql")):
        if not re.match(r"CREATE (GLOBAL TEMPORARY )?TABLE", statement.upper()):
            continue
        body = statement[statement.index("(") + 1:]
        for line in body.splitlines():
            words = line.split()
            if not words or words[0].upper() in ("CONSTRAINT", "REFERENCES", "CHECK", ")"):
                continue
            assert words[0].upper() not in ORACLE_RESERVED, (statement.split()[2], words[0])


def test_package_declares_nothing_after_its_first_subprogram_body() -> None:
    """PLS-00103: in a declare section, items (types, variables, cursors) come before bodies."""
    _spec, body = split_statements(read_sql("oracle", oracle_sql.PACKAGE_FILE))
    top_level = [line for line in body.splitlines() if re.match(r"^  \S", line)]
    first_body = next(i for i, line in enumerate(top_level)
                      if re.match(r"^  (FUNCTION|PROCEDURE)\b", line))
    for line in top_level[first_body:]:
        assert not re.match(r"^  (TYPE|g_|c_|CURSOR)\b", line), line


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ora_exception(60, "deadlock detected while waiting for resource"), "retriable"),
        (ora_exception(54, "resource busy"), "retriable"),
        (ora_exception(4068, "existing state of packages has been discarded"), "retriable"),
        (ora_exception(1033, "ORACLE initialization or shutdown in progress"), "retriable"),
        (ora_exception(12514, "listener does not currently know of service"), "retriable"),
        (ora_exception(3113, "end-of-file on communication channel"), "retriable"),  # → DPY-4011
        (dpy_exception(oracledb_errors.ERR_CONNECTION_FAILED, connection_id="x"), "retriable"),
        (dpy_exception(oracledb_errors.ERR_INVALID_SERVICE_NAME, service_name="FREEPDB1",
                       connection_id="x"), "retriable"),
        (ora_exception(1, "unique constraint violated"), "retriable"),
        (ora_exception(1400, 'cannot insert NULL into ("APP"."MNIST_IMAGES"."PIXELS")'), "data"),
        (ora_exception(12899, "value too large for column"), "data"),
        (ora_exception(2290, "check constraint violated"), "data"),
        (ora_exception(20005, "image x does not have 784 pixels"), "data"),
        (ora_exception(942, "table or view does not exist"), "fatal"),
        (ora_exception(1031, "insufficient privileges"), "fatal"),
        (ora_exception(1017, "invalid credential or not authorized; logon denied"), "fatal"),
        (ValueError("not a driver error"), "fatal"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    assert oracle_errors.classify(exc).kind == kind


def test_lost_connection_is_a_dead_session() -> None:
    exc = ora_exception(3113, "end-of-file on communication channel")
    assert oracle_errors.error_codes(exc) == (3113, "DPY-4011")
    assert oracle_errors.is_dead_session(exc)
    assert not oracle_errors.is_dead_session(ora_exception(60))


@pytest.mark.parametrize(
    ("code", "error_type", "fragment"),
    [
        (942, BackendError, "streamscore db init"),
        (1031, BackendError, "00_create_user.sql as a DBA"),
        (1950, BackendError, "QUOTA"),
        (20001, ArtifactError, "install_model"),
        (1400, BackendDataError, "ORA-01400"),
        (4068, BackendUnavailable, "ORA-04068"),
    ],
)
def test_translate_names_code_and_fix(code: int, error_type: type[Exception], fragment: str) -> None:
    error = OracleBackend(BackendURL.parse("oracle://a@h/s")).translate(ora_exception(code), "writing batch b-1")
    assert type(error) is error_type
    assert fragment in str(error)
    assert f"ORA-{code:05d}" in str(error)


def test_retry_delays() -> None:
    translated = OracleBackend(BackendURL.parse("oracle://a@h/s")).translate(ora_exception(4068), "x")
    assert isinstance(translated, BackendUnavailable) and translated.retry_after == 0.0
    assert translated.reason == "package-recompiled"
    assert oracle_errors.classify(ora_exception(60)) == ErrorKind("retriable", "deadlock", 0.5)
    assert oracle_errors.retry_delay(ora_exception(60)) == 0.5
    assert oracle_errors.retry_delay(ora_exception(12514)) == 1.0


# -- model rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "activations"),
    [((784, 32, 10), ("sigmoid", "softmax")),
     ((784, 64, 16, 10), ("relu", "tanh", "softmax")),
     ((784, 10), ("identity",))],
)
def test_model_rows_round_trip(sizes: tuple[int, ...], activations: tuple[str, ...]) -> None:
    artifact = make_artifact(sizes, activations=activations)
    model_row, layer_rows = rows_from_binds(artifact)
    assert len(layer_rows) == len(sizes) - 1
    for (layer_no, n_in, n_out, _act, biases, weights), w in zip(layer_rows, artifact.weights,
                                                                 strict=True):
        assert (n_in, n_out) == w.shape and len(weights) == 4 * n_in * n_out
        assert len(biases) == 4 * n_out and layer_no >= 0
        assert weights[:4] == np.float32(w[0, 0]).astype("<f4").tobytes()  # row-major, LE
    manifest = json.loads(model_row[3])
    assert manifest["sha256"] == artifact.sha256 == model_row[0]
    assert manifest["activations"] == list(activations)
    rebuilt = oracle_sql.artifact_from_rows(ModelRef("mlp", 1), model_row, layer_rows)
    assert rebuilt.sha256 == artifact.sha256
    assert rebuilt.activations == artifact.activations
    assert rebuilt.input_scale == artifact.input_scale
    assert rebuilt.canary_pixels is not None and artifact.canary_pixels is not None
    assert np.array_equal(rebuilt.canary_pixels, artifact.canary_pixels)
    assert ModelArtifact.from_bytes(rebuilt.to_bytes()).sha256 == artifact.sha256
    pixels = np.random.default_rng(3).integers(0, 256, (5, 784), dtype=np.uint8)
    assert np.array_equal(rebuilt.forward(pixels), artifact.forward(pixels))


def test_tampered_rows_fail_the_digest() -> None:
    model_row, layer_rows = rows_from_binds(make_artifact())
    weights = bytearray(layer_rows[0][5])
    weights[0] ^= 0x01
    layer_rows[0] = (*layer_rows[0][:5], bytes(weights))
    with pytest.raises(ArtifactError) as caught:
        oracle_sql.artifact_from_rows(ModelRef("mlp", 1), model_row, layer_rows)
    assert caught.value.reason == "bad-digest"
    with pytest.raises(ArtifactError, match="layer rows"):
        oracle_sql.artifact_from_rows(ModelRef("mlp", 1), model_row, layer_rows[:1])


def test_layers_too_large_for_utl_nla_are_refused() -> None:
    artifact = make_artifact((784, 1300, 10), activations=("relu", "softmax"))
    with pytest.raises(ArtifactError) as caught:
        oracle_sql.model_binds(artifact)
    assert caught.value.reason == "unsupported-shape"


# -- the GEMM layout the PL/SQL relies on ---------------------------------------------------------


def blas_gemm_n_n(m: int, n: int, k: int, a: npt.NDArray[np.float32], lda: int,
                  b: npt.NDArray[np.float32], ldb: int, c: npt.NDArray[np.float32],
                  ldc: int) -> None:
    """UTL_NLA.BLAS_GEMM('N', 'N', …, pack 'C') on flat buffers: C := A·B + C, column-major."""
    a_mat = a.reshape(-1, lda).T[:m, :k]  # column j starts at j*lda
    b_mat = b.reshape(-1, ldb).T[:k, :n]
    c_mat = c.reshape(-1, ldc).T[:m, :n]
    c_mat += a_mat @ b_mat  # writes through the view into c


def test_gemm_on_stored_buffers_equals_numpy_layer() -> None:
    """z' = W'x' + b on the raw row-major buffers (as mnist_scorer.sql does) is x @ w + b."""
    rng = np.random.default_rng(5)
    images, n_in, n_out = 7, 784, 32
    w = rng.normal(0, 0.1, (n_in, n_out)).astype(np.float32)
    b = rng.normal(0, 0.1, n_out).astype(np.float32)
    x = (rng.integers(0, 256, (images, n_in)) / 255).astype(np.float32)
    w_flat = np.frombuffer(w.astype("<f4").tobytes(), np.float32).copy()  # the BLOB
    x_flat = x.reshape(-1).copy()                    # image after image, as score_chunk fills it
    z_flat = np.tile(b, images)                      # every column of z' starts as b
    blas_gemm_n_n(n_out, images, n_in, w_flat, n_out, x_flat, n_in, z_flat, n_out)
    np.testing.assert_allclose(z_flat.reshape(images, n_out), x @ w + b, rtol=1e-5, atol=1e-5)


def plsql_activation(name: str, z: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """mnist_scorer.activate, formula for formula (double precision, stored as float32)."""
    d = z.astype(np.float64)
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            out = np.where(d < -80, 0.0, np.where(d > 80, 1.0, 1 / (1 + np.exp(-d))))
    elif name == "tanh":
        with np.errstate(over="ignore"):
            out = np.where(d > 20, 1.0, np.where(d < -20, -1.0, 1 - 2 / (np.exp(2 * d) + 1)))
    elif name == "relu":
        out = np.where(d < 0, 0.0, d)
    elif name == "softmax":  # per image: exp_clamped(z - max) stored as float32, summed in double
        shifted = d - d.max(axis=1, keepdims=True)
        with np.errstate(under="ignore"):
            e = np.where(shifted < -80, 0.0, np.exp(shifted)).astype(np.float32)
        out = e / e.astype(np.float64).sum(axis=1, keepdims=True)
    else:
        out = d
    return out.astype(np.float32)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "softmax", "identity"])
def test_plsql_activation_formulas_match_reference(name: str) -> None:
    z = np.concatenate([
        np.linspace(-120, 120, 2001, dtype=np.float32).reshape(-1, 1).repeat(10, axis=1),
        np.random.default_rng(9).normal(0, 30, (500, 10)).astype(np.float32),
    ])
    expected = ACTIVATIONS[name](z)
    np.testing.assert_allclose(plsql_activation(name, z), expected, atol=1e-6, rtol=1e-6)


# -- the batch transaction, against a fake connection ------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OracleBackend, FakeConnection]]:
    conn = FakeConnection()
    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> FakeConnection:
        seen.update(kwargs)
        return conn

    monkeypatch.setattr(oracledb, "connect", connect)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1?call_timeout=5000"))
    backend.connect()
    assert seen == {"user": "app", "password": "pw", "dsn": "db:1521/FREEPDB1"}
    assert conn.call_timeout == 5000
    yield backend, conn


def test_write_batch_order_and_duplicates(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a", "b"])
    conn.batch_errors["mnist_images"] = [ora(1, "unique constraint violated", offset=1)]
    scored = backend.write_batch(make_batch(["b", "a", "b"]), ModelRef("mlp", 2), "group-1")
    assert [entry[0:2] for entry in conn.log if entry[0] != "setinputsizes"] == [
        ("executemany", "mnist_images"),         # INSERT, once: no row is rewritten
        ("executemany", "mnist_batch_replays"),  # the ORA-00001 row, for the conflict check
        ("execute", "SELECT r.image_id FROM"),
        ("executemany", "mnist_batch_ids"),
        ("executemany", "consumer_offsets"),
        ("callproc", "mnist_scorer.score_staged"),
        ("execute", "SELECT p.image_id, p.predicted,"),
        ("execute", "MERGE INTO active_models"),
        ("commit",),
    ]
    assert ("executemany", "mnist_images", True) in conn.log  # batcherrors on
    assert [bind[0] for bind in conn.binds["mnist_images"]] == ["a", "b"]  # once each, sorted
    assert [bind[0] for bind in conn.binds["mnist_batch_replays"]] == ["b"]
    assert conn.binds["mnist_batch_ids"] == [("a",), ("b",)]
    assert conn.proc_args == [["mlp", 2, "champion"]]
    # label types are set before each executemany that carries labels
    assert conn.log.count(("setinputsizes", 5)) == 1 and conn.log.count(("setinputsizes", 3)) == 1
    assert conn.binds["consumer_offsets"] == [
        ("group-1", "mnist.images", 0, 200), ("group-1", "mnist.images", 1, 201),
    ]
    assert scored.image_ids == ["b", "a"] and scored.predicted.tolist() == [3, 3]
    assert scored.model == ModelRef("mlp", 2)
    # the same version again: active_models is not written twice
    conn.log.clear()
    backend.write_batch(make_batch(["a", "b"], "b-2"), ModelRef("mlp", 2), "group-1")
    assert ("execute", "MERGE INTO active_models") not in conn.log


def test_write_batch_rejected_rows_roll_back(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    conn.batch_errors["mnist_images"] = [ora(12899, "value too large for column", offset=1)]
    with pytest.raises(BackendDataError, match=r"first 'b': \[ORA-12899\]"):
        backend.write_batch(make_batch(["a", "b"]), ModelRef("mlp", 1), "g")
    assert conn.log[-1] == ("rollback",)
    assert ("commit",) not in conn.log


@pytest.mark.parametrize(
    ("errors", "expected", "reason"),
    [
        ([ora(60, "deadlock detected", offset=0)], BackendUnavailable, "deadlock"),
        ([ora(12899, "value too large", offset=1), ora(60, "deadlock detected", offset=0)],
         BackendUnavailable, "deadlock"),  # retry first: the retry meets the bad row again, then bisects
        ([ora(12899, "value too large", offset=1)], BackendDataError, "db-rejected"),
        ([ora(942, "table or view does not exist", offset=0), ora(60, "deadlock", offset=1)],
         BackendError, "backend"),
    ],
)
def test_row_errors_are_classified_one_by_one(
    fake: tuple[OracleBackend, FakeConnection], errors: list[Any], expected: type[Exception], reason: str,
) -> None:
    backend, conn = fake
    conn.batch_errors["mnist_images"] = errors
    with pytest.raises(BackendError) as failure:
        backend.write_batch(make_batch(["a", "b"]), ModelRef("mlp", 1), "g")
    assert type(failure.value) is expected and failure.value.reason == reason
    assert conn.log[-1] == ("rollback",) and ("commit",) not in conn.log


def test_shadow_never_writes_active_models(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = FakeConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kwargs: conn)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1"))
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    scored = backend.write_batch(make_batch(["a"]), ModelRef("mlp", 7, "shadow"), "g")
    assert ("execute", "MERGE INTO active_models") not in conn.log
    assert conn.log[-1] == ("commit",)
    assert scored.model.role == "shadow"
    assert [e for e in conn.log if e[0] == "callproc"] == [("callproc", "mnist_scorer.score_staged")]
    assert conn.proc_args[-1][-1] == "shadow"  # the role reaches the scorer (and the rows)


def test_scoring_a_model_that_is_not_installed(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    conn.callproc_errors = [ora_exception(20001, "model mlp:9 is not installed")]
    with pytest.raises(ArtifactError) as failure:
        backend.write_batch(make_batch(["a"]), ModelRef("mlp", 9), "g")
    assert failure.value.reason == "not-installed" and "ORA-20001" in failure.value.message
    assert conn.log[-1] == ("rollback",) and ("commit",) not in conn.log
    with pytest.raises(ArtifactError, match="not installed") as loading:
        backend.load_model(ModelRef("mlp", 9))  # no model row
    assert loading.value.reason == "not-installed"


def test_long_model_names_are_refused_before_any_statement(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    artifact = dataclasses.replace(make_artifact(), name="m" * 65)
    with pytest.raises(ArtifactError, match="1 to 64 UTF-8 bytes") as failure:
        backend.install_model(artifact)
    assert failure.value.reason == "bad-name" and conn.log == []


def test_compile_error_query_ignores_warnings() -> None:
    # PLW- warnings (PLSQL_WARNINGS enabled by a DBA) sit in user_errors too, with
    # attribute 'WARNING', for a package that is VALID: they must not fail the install
    assert "attribute = 'ERROR'" in oracle_sql.statement("select_compile_errors")


def test_write_batch_retries_scorer_once_after_recompile(
    fake: tuple[OracleBackend, FakeConnection],
) -> None:
    backend, conn = fake
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    conn.callproc_errors = [ora_exception(4068, "existing state of packages has been discarded")]
    backend.write_batch(make_batch(["a"]), ModelRef("mlp", 1), "g")
    assert [e for e in conn.log if e[0] == "callproc"] == [("callproc", "mnist_scorer.score_staged")] * 2
    assert conn.log[-1] == ("commit",)
    # twice in a row is an outage for the loop to retry, and the batch is rolled back
    conn.callproc_errors = [ora_exception(4068), ora_exception(4068)]
    with pytest.raises(BackendUnavailable):
        backend.write_batch(make_batch(["a"]), ModelRef("mlp", 1), "g")
    assert conn.log[-1] == ("rollback",)


def test_lost_connection_reconnects(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    conn.callproc_errors = [ora_exception(3113, "end-of-file on communication channel")]
    with pytest.raises(BackendUnavailable, match="DPY-4011"):
        backend.write_batch(make_batch(["a"]), ModelRef("mlp", 1), "g")
    assert ("close",) in conn.log
    conn.results["SELECT kafka_partition, next_offset"] = [(0, 17), (3, 4)]
    assert backend.stored_offsets("g", "mnist.images") == {0: 17, 3: 4}  # reconnected


def test_score_rolls_back(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    pixels = np.zeros((2, 784), np.uint8)

    def answer(sql: str, params: Any = None, **kwargs: Any) -> None:
        ids = [bind[0] for bind in conn.binds["mnist_images"]]
        cursor.rows = prediction_rows(ids)

    cursor = FakeCursor(conn)
    cursor.execute = answer  # type: ignore[method-assign]
    conn.cursor = lambda: cursor  # type: ignore[method-assign]
    probabilities = backend.score(pixels, ModelRef("mlp", 1))
    assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
    assert conn.log[-1] == ("rollback",) and ("commit",) not in conn.log
    assert all(bind[0].startswith("score-") for bind in conn.binds["mnist_images"])


def test_init_schema_tolerates_existing_objects_and_skips_unchanged_package(
    fake: tuple[OracleBackend, FakeConnection],
) -> None:
    backend, conn = fake
    conn.fail_on["CREATE TABLE mnist_images"] = ora_exception(955, "name is already used")
    version_line = f"  c_package_version CONSTANT PLS_INTEGER := {oracle_package.file_version()};"
    conn.results["SELECT (SELECT source_sha256"] = [(oracle_sql.package_digest(), 2, version_line)]
    backend.init_schema()
    executed = [entry[1] for entry in conn.log if entry[0] == "execute"]
    assert executed.count("CREATE TABLE mnist_predictions") == 1
    assert not any("PACKAGE" in statement for statement in executed)  # no recompile
    # a changed (or missing) package is compiled, natively, and its digest recorded
    conn.log.clear()
    conn.results["SELECT (SELECT source_sha256"] = [("old", 2, None)]  # from before versions
    backend.init_schema()
    executed = [entry[1] for entry in conn.log if entry[0] == "execute"]
    assert "ALTER SESSION SET" in executed
    assert executed.count("CREATE OR REPLACE") == 2  # spec and body
    assert executed[-1] == "MERGE INTO schema_objects"
    # any other DDL failure stops with a fatal error that names the fix
    conn.fail_on["CREATE TABLE mnist_images"] = ora_exception(1031, "insufficient privileges")
    with pytest.raises(BackendError, match=r"00_create_user\.sql"):
        backend.init_schema()


def test_package_compile_errors_name_the_line_of_the_file(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    # Oracle numbers lines from each unit's CREATE line: line 12 of the body is in the file at
    # the body's start line + 11, and that line holds what the error is about
    conn.results["SELECT type, line,"] = [("PACKAGE BODY", 12, 5, "PLS-00201: identifier 'X'\n")]
    _spec, body = script("oracle", oracle_sql.PACKAGE_FILE)
    file_line = body.file_line(12)
    with pytest.raises(BackendError, match=rf"mnist_scorer\.sql line {file_line}:5 \(PACKAGE BODY line 12\) PLS-00201"):
        backend.init_schema()
    lines = read_sql("oracle", oracle_sql.PACKAGE_FILE).splitlines()
    assert lines[file_line - 1].strip() == body.text.splitlines()[11].strip() != ""


def test_install_model_is_idempotent_and_refuses_conflicts(
    fake: tuple[OracleBackend, FakeConnection],
) -> None:
    backend, conn = fake
    artifact = make_artifact()
    backend.install_model(artifact)
    inserts = [entry for entry in conn.log if entry[:2] == ("execute", "INSERT INTO model_layers")]
    assert len(inserts) == 2 and conn.log[-1] == ("commit",)
    conn.log.clear()
    conn.results["SELECT sha256 FROM"] = [(artifact.sha256,)]
    backend.install_model(artifact)
    assert not any(entry[1:2] == ("INSERT INTO model_versions",) for entry in conn.log)
    conn.results["SELECT sha256 FROM"] = [("0" * 64,)]
    with pytest.raises(ArtifactError) as caught:
        backend.install_model(artifact)
    assert caught.value.reason == "version-conflict"
    assert conn.log[-1] == ("rollback",)


# -- id-conflict: an id stored with other content is reported, never scored -------------------


def test_images_are_inserted_and_conflicts_found_in_one_join() -> None:
    insert = oracle_sql.statement("insert_image")
    assert insert.lstrip().startswith("INSERT INTO mnist_images") and "MERGE" not in insert
    conflicts = oracle_sql.statement("select_conflicts")
    assert "i.pixels <> r.pixels OR DECODE(i.label, r.label, 1, 0) = 0" in conflicts
    predictions = oracle_sql.statement("select_predictions")
    assert "mnist_batch_ids" in predictions and "batch_id" not in predictions.replace("batch_ids", "")


def test_replayed_ids_with_other_content_are_conflicts_and_not_scored(
    fake: tuple[OracleBackend, FakeConnection],
) -> None:
    backend, conn = fake
    batch = make_batch(["a", "b", "c", "d"])
    conn.batch_errors["mnist_images"] = [ora(1, "unique", offset=1), ora(1, "unique", offset=2)]
    conn.results["SELECT r.image_id FROM"] = [("c",), ("b",)]
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a", "d"])
    scored = backend.write_batch(batch, ModelRef("mlp", 1), "g")
    assert scored.conflicts == ["b", "c"]
    assert scored.image_ids == ["a", "d"] and scored.probabilities.shape == (2, 10)
    assert [bind[0] for bind in conn.binds["mnist_batch_replays"]] == ["b", "c"]
    assert conn.binds["mnist_batch_ids"] == [("a",), ("d",)]  # only these are scored
    assert conn.log[-1] == ("commit",)


def test_a_batch_of_new_ids_looks_nothing_up(fake: tuple[OracleBackend, FakeConnection]) -> None:
    backend, conn = fake
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a", "b"])
    assert backend.write_batch(make_batch(["a", "b"]), ModelRef("mlp", 1), "g").conflicts == []
    assert ("execute", "SELECT r.image_id FROM") not in conn.log
    assert "mnist_batch_replays" not in conn.binds


def test_a_batch_of_conflicts_only_scores_nothing_and_stores_offsets(
    fake: tuple[OracleBackend, FakeConnection],
) -> None:
    backend, conn = fake
    conn.batch_errors["mnist_images"] = [ora(1, "unique", offset=0), ora(1, "unique", offset=1)]
    conn.results["SELECT r.image_id FROM"] = [("a",), ("b",)]
    scored = backend.write_batch(make_batch(["a", "b"]), ModelRef("mlp", 1), "g")
    assert scored.conflicts == ["a", "b"] and scored.image_ids == []
    assert not any(entry[0] == "callproc" for entry in conn.log)
    assert ("execute", "MERGE INTO active_models") not in conn.log
    assert "mnist_batch_ids" not in conn.binds and "consumer_offsets" in conn.binds
    assert conn.log[-1] == ("commit",)


def test_a_replay_without_a_prediction_is_predictions_missing(
    fake: tuple[OracleBackend, FakeConnection],
) -> None:
    backend, conn = fake
    conn.batch_errors["mnist_images"] = [ora(1, "unique", offset=i) for i in range(3)]
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    with pytest.raises(BackendUnavailable) as failure:
        backend.write_batch(make_batch(["a", "b", "c"]), ModelRef("mlp", 1), "g")
    assert failure.value.reason == "predictions-missing"


def test_plsql_timing_switches_the_counters_on_once_and_logs_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    conn = FakeConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kwargs: conn)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1?plsql_timing=1"))
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    with caplog.at_level("INFO", logger="streamscore.backends.oracle.backend"):
        backend.write_batch(make_batch(["a"]), ModelRef("mlp", 1), "g")
        backend.write_batch(make_batch(["a"], "b-2"), ModelRef("mlp", 1), "g")
    calls = [entry for entry in conn.log if entry[0] in ("callproc", "callfunc")]
    assert calls == [("callproc", "mnist_scorer.set_timing"), ("callproc", "mnist_scorer.score_staged"),
                     ("callfunc", "mnist_scorer.timings"), ("callproc", "mnist_scorer.score_staged"),
                     ("callfunc", "mnist_scorer.timings")]
    assert conn.proc_args[0] == [1]
    assert "batches=1 images=2" in caplog.text


def test_a_serving_set_takes_the_per_version_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Oracle scores one version per call (issue 12): the shadow first without offsets, then the champion
    with them (a crash in between replays the batch); an ensemble is refused before anything runs."""
    from streamscore.backends.records import ServingSet

    conn = FakeConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kwargs: conn)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1"))
    conn.results["SELECT p.image_id, p.predicted,"] = prediction_rows(["a"])
    served, shadow = backend.write_set(make_batch(["a"]), ServingSet((ModelRef("mlp", 1),),
                                                                     (ModelRef("mlp", 2, "shadow"),)), "g")
    assert (served.model.role, shadow.model.role) == ("champion", "shadow")
    assert [args[-1] for args in conn.proc_args] == ["shadow", "champion"]
    assert conn.log.count(("commit",)) == 2
    first = conn.log.index(("commit",))
    offsets = [n for n, entry in enumerate(conn.log) if entry[:2] == ("executemany", "consumer_offsets")]
    assert len(offsets) == 1 and offsets[0] > first, "only the champion's transaction stores offsets"
    with pytest.raises(ConfigError) as refused:
        backend.write_set(make_batch(["a"]), ServingSet((ModelRef("mlp", 1, "member"), ModelRef("mlp", 2, "member"))),
                          "g")
    assert "ensemble" in refused.value.message


def test_the_lifecycle_snapshot_is_kept_in_its_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: the snapshot a consumer applied is merged (never lowered: the WHERE of the MERGE) and read back."""
    conn = FakeConnection()
    monkeypatch.setattr(oracledb, "connect", lambda **kwargs: conn)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1"))
    assert "lifecycle" in backend.implements
    backend.store_lifecycle("mlp", 7, '{"name":"mlp"}')
    assert ("execute", "MERGE INTO model_lifecycle") in conn.log and conn.log[-1] == ("commit",)
    merge = oracle_sql.statement("merge_lifecycle")
    assert "WHERE s.revision > t.revision" in merge
    conn.results["SELECT revision, state"] = [(7, '{"name":"mlp"}')]
    assert backend.stored_lifecycle("mlp") == (7, '{"name":"mlp"}')
