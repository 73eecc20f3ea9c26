"""Where the Kinetica tests find a server: ``STREAMSCORE_TEST_KINETICA_URL``, else (for the
contract suite) the local stand-in of tests/fakes/kinetica_server.py.

Plain helpers plus one pytest fixture (``kinetica_url``, registered by tests/conftest.py's
``pytest_plugins``; test modules import only the helpers).
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from collections.abc import Iterator
from functools import cache

import pytest

ENV = "STREAMSCORE_TEST_KINETICA_URL"


def kinetica_test_url() -> str | None:
    """The Kinetica URL to test against (e.g. kinetica://admin:admin@localhost:9191), or None."""
    return os.environ.get(ENV) or None


@cache
def standin_url() -> str:
    """The URL of a Kinetica stand-in served from a thread of this process (started once,
    stopped at exit): the real gpudb client talks HTTP to it."""
    from fakes.kinetica_server import serve

    httpd = serve(0)
    thread = threading.Thread(target=httpd.serve_forever, name="kinetica-standin", daemon=True)
    thread.start()
    atexit.register(httpd.shutdown)
    return f"kinetica://standin:not-a-secret@127.0.0.1:{httpd.server_address[1]}"


def kinetica_url_or_standin() -> tuple[str, bool]:
    """(URL, True when it is the stand-in) for the contract suite."""
    url = kinetica_test_url()
    return (url, False) if url is not None else (standin_url(), True)


@pytest.fixture
def kinetica_url() -> Iterator[str]:
    """A Kinetica URL with a fresh schema per test; skips naming the variable when unset."""
    url = kinetica_test_url()
    if url is None:
        pytest.skip(f"Kinetica not configured: set {ENV}=kinetica://user:password@host:9191")
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}schema=sst_{uuid.uuid4().hex[:10]}&head_only=1"
