"""Scorers that run dense layers only refuse a CNN at install (``unsupported-layers``), write nothing,
and keep serving: DuckDB scorer=sql and Oracle's PL/SQL scorer. Oracle scorer=onnx on 23ai takes it
(DuckDB's UDF, PostgreSQL and the Kinetica UDF score it: tests/contract/test_backend_contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import oracledb
import pytest
from test_layered_artifact import small_cnn

from oracle_fakes import FakeConnection
from streamscore.backends import ModelRef, open_backend
from streamscore.backends.oracle import OracleBackend
from streamscore.backends.url import BackendURL
from streamscore.errors import BackendError
from streamscore.models import bundled_model


def test_the_duckdb_sql_scorer_refuses_a_cnn_and_keeps_serving(tmp_path: Path) -> None:
    with open_backend(f"duckdb:///{tmp_path / 'sql.db'}?scorer=sql") as backend:
        backend.init_schema()
        backend.install_model(bundled_model(2))
        with pytest.raises(BackendError) as caught:
            backend.install_model(small_cnn())
        assert caught.value.reason == "unsupported-layers"
        assert "conv2d, maxpool2d, flatten" in caught.value.message and "scorer=udf" in caught.value.message
        assert backend.installed_versions("mlp") == [2]
        assert backend.score(bundled_model(2).canary_pixels, ModelRef("mlp", 2)).shape == (16, 10)


def oracle(monkeypatch: pytest.MonkeyPatch, query: str, server: str) -> tuple[OracleBackend, FakeConnection]:
    conn = FakeConnection()
    conn.version = server  # type: ignore[attr-defined]

    def connect(**_: Any) -> FakeConnection:
        return conn

    monkeypatch.setattr(oracledb, "connect", connect)
    backend = OracleBackend(BackendURL.parse(f"oracle://app:pw@db:1521/FREEPDB1{query}"))
    backend.connect()
    return backend, conn


@pytest.mark.parametrize(("query", "server"), [("", "23.26.0.0.0"), ("?scorer=onnx", "19.3.0.0.0")])
def test_the_oracle_plsql_scorer_refuses_a_cnn_before_writing(monkeypatch: pytest.MonkeyPatch, query: str,
                                                                server: str) -> None:
    backend, conn = oracle(monkeypatch, query, server)
    with pytest.raises(BackendError) as caught:
        backend.install_model(small_cnn())
    assert caught.value.reason == "unsupported-layers" and "PL/SQL" in caught.value.message
    assert not any("INSERT" in str(entry[1:2]) for entry in conn.log)


def test_oracle_scorer_onnx_on_23ai_installs_a_cnn(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, conn = oracle(monkeypatch, "?scorer=onnx", "23.26.0.0.0")
    backend.install_model(small_cnn())
    inserts = [entry for entry in conn.log if entry[:2] == ("execute", "INSERT INTO model_layers")]
    assert len(inserts) == 3 and conn.log[-1] == ("commit",)


def test_oracle_rows_of_a_cnn_rebuild_it() -> None:
    from streamscore.backends.oracle import statements as oracle_sql

    artifact = small_cnn()
    model, layers = oracle_sql.model_binds(artifact)
    rebuilt = oracle_sql.artifact_from_rows(
        ModelRef("mlp", 4), (model[2], model[3], model[4], model[5], model[6]),
        [(index, n_in, n_out, activation, biases, weights) for _, _, index, n_in, n_out, activation, biases, weights
         in layers])
    assert rebuilt.layered and rebuilt.sha256 == artifact.sha256
