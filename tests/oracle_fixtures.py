"""Where the Oracle tests find a database: a plain module, shared by tests/integration and
tests/contract (import ``oracle_url`` into a test module or a conftest to use the fixture).

1. ``STREAMSCORE_TEST_ORACLE_DSN`` when set: ``oracle://user:password@host:1521/FREEPDB1``
   (``user/password@host:1521/FREEPDB1`` is accepted too). The user needs the rights
   of sql/oracle/00_create_user.sql; the tests create the schema themselves.
2. else, when a Docker engine answers and testcontainers is installed
   (``pip install 'testcontainers[oracle-free]'``), a throw-away gvenzl/oracle-free
   container for the test session (the first pull and start take minutes);
3. else the tests skip, naming both.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

ENV = "STREAMSCORE_TEST_ORACLE_DSN"
IMAGE = "gvenzl/oracle-free:23.26.0-slim-faststart"
SERVICE = "FREEPDB1"


def oracle_test_url() -> str | None:
    """The backend URL from STREAMSCORE_TEST_ORACLE_DSN (read on call), or None."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    if "://" in value:
        return value
    credentials, _, dsn = value.rpartition("@")  # Easy Connect: user/password@host:port/service
    user, _, password = credentials.partition("/")
    return f"oracle://{quote(user, safe='')}:{quote(password, safe='')}@{dsn}"


def docker_unavailable() -> str | None:
    """Why no container can be started here, or None when Docker and testcontainers are ready."""
    try:
        docker: Any = importlib.import_module("docker")
        importlib.import_module("testcontainers")
    except ImportError as exc:
        return f"{exc.name} is not installed"
    try:
        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    return None


@contextlib.contextmanager
def oracle_container_url() -> Iterator[str]:
    """Start gvenzl/oracle-free with an app user; yield its backend URL; remove it after."""
    # testcontainers reads its wait limit at import (120 s by default): a cold start can be longer
    os.environ.setdefault("TC_MAX_TRIES", "600")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # testcontainers.oracle is deprecated
        try:
            module: Any = importlib.import_module("testcontainers.community.oracle")
        except ImportError:
            module = importlib.import_module("testcontainers.oracle")
    user, password = "streamscore", secrets.token_hex(12)
    container = module.OracleDbContainer(
        IMAGE, oracle_password=secrets.token_hex(12), username=user, password=password
    )
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(1521)
        yield f"oracle://{user}:{password}@{host}:{port}/{SERVICE}"


@pytest.fixture(scope="session")
def oracle_url() -> Iterator[str]:
    """A reachable Oracle as a backend URL, or a skip that says what is missing."""
    url = oracle_test_url()
    if url is not None:
        yield url
        return
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(
            f"Oracle tests need {ENV}=oracle://user:password@host:1521/{SERVICE} or a Docker "
            f"engine with testcontainers[oracle-free] installed ({reason})"
        )
    with oracle_container_url() as container_url:
        yield container_url
