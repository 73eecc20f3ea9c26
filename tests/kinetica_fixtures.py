"""Where the Kinetica tests find a server: ``STREAMSCORE_TEST_KINETICA_URL``.

Plain helpers plus one pytest fixture, so the shared contract suite can include
Kinetica with ``pytest_plugins`` or a direct import.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ENV = "STREAMSCORE_TEST_KINETICA_URL"


def kinetica_test_url() -> str | None:
    """The Kinetica URL to test against (e.g. kinetica://admin:admin@localhost:9191), or None."""
    return os.environ.get(ENV) or None


@pytest.fixture
def kinetica_url() -> Iterator[str]:
    """A Kinetica URL with a fresh schema per test; skips naming the variable when unset."""
    url = kinetica_test_url()
    if url is None:
        pytest.skip(f"Kinetica not configured: set {ENV}=kinetica://user:password@host:9191")
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}schema=sst_{uuid.uuid4().hex[:10]}&head_only=1"
