"""Against a real Kinetica (runs only when STREAMSCORE_TEST_KINETICA_URL is set)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinetica_fixtures import kinetica_url  # noqa: F401
from streamscore.backends import ImageBatch, ModelRef, SourceOffset, open_backend
from streamscore.backends.kinetica import KineticaBackend
from streamscore.model.artifact import build_artifact
from streamscore.shared.mnist import load_split

pytestmark = pytest.mark.kinetica


def test_write_batch_replay_and_models(kinetica_url: str) -> None:  # noqa: F811
    check_write_batch_replay_and_models(kinetica_url)


def check_write_batch_replay_and_models(url: str) -> None:
    test = load_split("test")
    rng = np.random.default_rng(0)
    artifact = build_artifact(
        "mlp", 1, [rng.normal(0, 0.05, (784, 32)).astype(np.float32),
                   rng.normal(0, 0.05, (32, 10)).astype(np.float32)],
        [np.zeros(32, np.float32), np.zeros(10, np.float32)], ["sigmoid", "softmax"])
    backend = open_backend(url)
    assert isinstance(backend, KineticaBackend)
    with backend:
        backend.init_schema()
        backend.init_schema()  # twice is harmless
        backend.install_model(artifact)
        assert backend.installed_versions("mlp") == [1]
        assert backend.load_model(ModelRef("mlp", 1)).sha256 == artifact.sha256
        n = 50
        batch = ImageBatch(
            "it-1", [test.image_id(i) for i in range(n)], test.images[:n],
            test.labels[:n].astype(np.int16), np.full(n, 1, np.int64),
            [SourceOffset("mnist.images", 0, i) for i in range(n)], {("mnist.images", 0): n},
        )
        first = backend.write_batch(batch, ModelRef("mlp", 1), "g")
        again = backend.write_batch(batch, ModelRef("mlp", 1), "g")  # replay converges
        want = artifact.forward(test.images[:n])
        assert np.abs(first.probabilities - want).max() <= 1e-4
        assert (again.predicted == first.predicted).all()
        assert backend.stored_offsets("g", "mnist.images") == {0: n}
        assert np.abs(backend.score(test.images[:5], ModelRef("mlp", 1)) - want[:5]).max() <= 1e-4


@pytest.fixture
def standin_module_url(tmp_path: Path) -> Iterator[str]:
    """``python -m tests.fakes.kinetica_server --port 0`` in a child process; its URL."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.kinetica_server", "--port", "0",
         "--database", str(tmp_path / "standin.duckdb")],
        cwd=root, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # printed once the port is bound
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"the stand-in did not start: {line!r}"
        yield f"kinetica://u:p@127.0.0.1:{match[1]}?schema=it"
    finally:
        child.terminate()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()


def test_the_standin_runs_as_a_module_and_serves_the_backend(standin_module_url: str) -> None:
    # issue 17 item 9: the real gpudb client, multi-head ingest and the UDF over two segments
    check_write_batch_replay_and_models(standin_module_url)
