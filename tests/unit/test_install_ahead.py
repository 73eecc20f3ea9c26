"""Installing ahead on a second session of a real DuckDB file (consumers/install_ahead.py)."""

from __future__ import annotations

import time
from pathlib import Path

from streamscore.backends import open_backend
from streamscore.backends.base import ModelRef
from streamscore.consumers.install_ahead import InstallAhead
from streamscore.model.artifact import ModelArtifact
from streamscore.models import bundled_model


def prepared(ahead: InstallAhead, artifact: ModelArtifact) -> bool:
    ahead.start(artifact)
    deadline = time.monotonic() + 20
    while ahead.busy():
        assert time.monotonic() < deadline, "the preparation never ended"
        time.sleep(0.01)
    return ahead.take(artifact)


def test_a_version_is_installed_on_the_second_session_and_scored_by_the_first(tmp_path: Path) -> None:
    with open_backend(f"duckdb:///{tmp_path / 'a.duckdb'}") as backend:
        backend.init_schema()
        ahead = InstallAhead(backend.session)
        v2 = bundled_model(2)
        assert prepared(ahead, v2)
        assert not ahead.take(v2), "taken once"
        assert backend.installed_versions("mlp") == [2]
        assert v2.canary_pixels is not None
        scores = backend.score(v2.canary_pixels, ModelRef("mlp", 2))  # the loop's connection sees it
        assert scores.argmax(axis=1).tolist() == [int(c) for c in v2.manifest["canary"]]
        ahead.close()


def test_a_session_left_behind_by_a_reconnect_is_replaced(tmp_path: Path) -> None:
    with open_backend(f"duckdb:///{tmp_path / 'b.duckdb'}") as backend:
        backend.init_schema()
        ahead = InstallAhead(backend.session)
        assert prepared(ahead, bundled_model(1))
        backend.close()  # the loop's backend reconnects (a new instance): the session's connection is gone
        backend.connect()
        assert not prepared(ahead, bundled_model(2)), "the old session fails: the loop installs that one"
        assert prepared(ahead, bundled_model(2).with_version(3)), "a new session serves the next"
        ahead.close()


def test_taking_a_version_forgets_the_older_ones_prepared_before_it(tmp_path: Path) -> None:
    with open_backend(f"duckdb:///{tmp_path / 'c.duckdb'}") as backend:
        backend.init_schema()
        ahead = InstallAhead(backend.session)
        v2, v3 = bundled_model(2), bundled_model(2).with_version(3)
        ahead.start(v2)
        assert prepared(ahead, v3)  # v3 overtook v2 before either was served
        assert not ahead.take(v2), "what the loop did not take stays bounded: the older one is forgotten"
        ahead.close()
