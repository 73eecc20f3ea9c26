"""Fixtures of the contract suite: one backend per reachable engine (see contract_hooks)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_hooks import ENGINES, Scope, engine_url

from streamscore.backends import Backend, open_backend


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scope() -> Scope:
    return Scope(secrets.token_hex(4))


@pytest.fixture
def backend(engine: str, tmp_path: Path) -> Iterator[Backend]:
    """A connected backend with its schema created."""
    with engine_url(engine, tmp_path) as url:
        database = open_backend(url)
        database.connect()
        try:
            database.init_schema()
            yield database
        finally:
            database.close()
