"""The dashboard's parts without Kafka: tallies, pixels and PNGs, the HTTP server and its event stream."""

from __future__ import annotations

import hashlib
import io
import json
import tomllib
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
from typer.testing import CliRunner

from streamscore.cli import app
from streamscore.dashboard.live import ACCURACY_WINDOW, LiveEvaluation
from streamscore.dashboard.pixels import PixelCache, digit_png
from streamscore.dashboard.server import DashboardServer
from streamscore.dashboard.topics import PublishedModels
from streamscore.dashboard.views import Sources, state, summary
from streamscore.errors import ConfigError
from streamscore.models import bundled_model
from streamscore.ops.topic_summary import DeadLetters
from streamscore.shared.messages import Prediction

REPO = Path(__file__).resolve().parents[2]


def prediction(image: int, version: int, predicted: int, label: int | None, scored_at: int, *, role: str = "champion",
               backend: str = "duckdb", produced_at: int | None = None) -> Prediction:
    probabilities = tuple(0.9 if digit == predicted else 0.01 for digit in range(10))
    return Prediction(f"t10k-{image:05d}", predicted, probabilities, label, "mlp", version, role, backend,
                      scored_at - 40 if produced_at is None else produced_at, scored_at)


def sources(evaluation: LiveEvaluation | None = None) -> Sources:
    pixels = PixelCache(recent=3)
    return Sources(evaluation or LiveEvaluation(on_misclassified=pixels.keep), DeadLetters(), PublishedModels(), pixels)


def test_served_predictions_count_once_per_image_and_version() -> None:
    evaluation = LiveEvaluation()
    t = 1_700_000_000_000
    assert evaluation.add(prediction(0, 1, 7, 7, t))
    assert not evaluation.add(prediction(0, 1, 3, 7, t + 5))  # a replay, even with another digit
    assert not evaluation.add(prediction(0, 1, 7, 7, t, backend="postgres"))  # same image and version elsewhere
    assert not evaluation.add(prediction(0, 2, 7, 7, t, role="shadow"))  # never served
    assert evaluation.add(prediction(0, 2, 1, 7, t + 1000, role="ensemble"))  # served: counted
    assert evaluation.add(prediction(1, 2, 4, None, t + 2000, produced_at=0))  # unlabelled, no produced-at
    body = summary(sources(evaluation), {"bad-length": 2})
    assert body["versions"] == {"1": {"predictions": 1, "correct": 1, "accuracy": 1.0},
                                "2": {"predictions": 2, "correct": 0, "accuracy": 0.0}}
    assert body["dlq"] == {"bad-length": 2}
    assert body["latency_ms"] == {"p50": 40.0, "p99": 40.0}  # the prediction without produced-at is left out
    assert body["throughput_per_s"] == pytest.approx(3 / 2.0)
    assert not evaluation.add(prediction(2, 2, 11, 7, t + 2000))  # parses, but is no digit: malformed
    assert evaluation.duplicates == 2 and evaluation.shadow_predictions == 1 and evaluation.malformed == 1
    assert evaluation.image_ids() == {"t10k-00000", "t10k-00001"}
    assert [(r.version, r.scored, r.labelled, r.correct) for r in evaluation.versions()] == [(1, 1, 1, 1), (2, 2, 1, 0)]
    report = evaluation.to_json()  # the evaluator's report shape, from the tallies
    assert (report["images"], report["predictions"], report["duplicates_ignored"]) == (2, 3, 2)
    assert [v["scored"] for v in report["versions"]] == [1, 2]


def test_empty_summary_has_the_documented_shape() -> None:
    assert summary(sources(), {}) == {"versions": {}, "dlq": {}, "throughput_per_s": 0.0,
                                      "latency_ms": {"p50": 0.0, "p99": 0.0}}


def test_throughput_is_over_the_newest_ten_seconds_of_stream_time() -> None:
    evaluation = LiveEvaluation()
    t = 1_700_000_000_000
    for i in range(100):  # 100 images in the first second, then 10 per second for 20 s
        evaluation.add(prediction(i, 1, 0, 0, t + i))
    for i in range(200):
        evaluation.add(prediction(1000 + i, 1, 0, 0, t + 1000 + i * 100))
    newest = t + 1000 + 199 * 100
    in_window = sum(1 for i in range(200) if t + 1000 + i * 100 >= newest - 10_000)
    assert evaluation.recent_throughput() == pytest.approx(in_window / 10, rel=0.02)
    seconds = evaluation.throughput_series()
    assert seconds[0] == (t // 1000, 100) and sum(n for _s, n in seconds) == 300


def test_accuracy_is_a_sliding_window_per_version() -> None:
    evaluation = LiveEvaluation()
    t = 1_700_000_000_000
    for i in range(ACCURACY_WINDOW):  # all wrong, then all right: the window forgets the wrong ones
        evaluation.add(prediction(i, 1, 1, 0, t))
    for i in range(ACCURACY_WINDOW):
        evaluation.add(prediction(ACCURACY_WINDOW + i, 1, 0, 0, t + 5000))
    assert evaluation.accuracy_series() == {1: [(t // 1000, 0.0), (t // 1000 + 5, 1.0)]}
    assert evaluation.versions()[0].accuracy == 0.5


def test_misclassified_digits_keep_their_pixels() -> None:
    board = sources()
    evaluation, pixels = board.evaluation, board.pixels
    t = 1_700_000_000_000
    pixels.add_image("t10k-00001", bytes([1]) * 784)
    evaluation.add(prediction(1, 1, 3, 5, t))  # image already read: kept
    evaluation.add(prediction(2, 1, 4, 5, t))  # image not read yet: kept when it arrives
    for i in range(3, 8):
        pixels.add_image(f"t10k-{i:05d}", bytes(784))  # pushes image 1 out of the recent window (3)
    pixels.add_image("t10k-00002", bytes([2]) * 784)
    shown = state(board, {}, t)["misclassified"]
    assert [(m["image_id"], m["label"], m["predicted"], m["has_pixels"]) for m in shown] == [
        ("t10k-00002", 5, 4, True), ("t10k-00001", 5, 3, True)]
    assert shown[0]["probability"] == pytest.approx(0.9)
    assert pixels.get("t10k-00001") == bytes([1]) * 784 and pixels.get("t10k-00003") is None


def test_digit_png_decodes_to_the_inverted_pixels() -> None:
    pixels = np.arange(784, dtype=np.uint32).astype(np.uint8)
    drawn = matplotlib.image.imread(io.BytesIO(digit_png(pixels.tobytes())), format="png")
    assert drawn.shape == (28, 28)
    assert np.array_equal(np.rint(drawn * 255).astype(np.uint8), 255 - pixels.reshape(28, 28))


def test_models_in_force_name_their_roles() -> None:
    board = sources()
    artifact = bundled_model(1)
    raw = artifact.to_bytes()

    for version in (1, 2, 3):
        board.models.add(b"mlp", raw, {"model-version": str(version).encode(),
                                       "sha256": hashlib.sha256(raw).hexdigest().encode()})
    board.models.add(b"mlp", b"not an artifact", {"model-version": b"4", "sha256": b"00"})
    t = 1_700_000_000_000
    board.evaluation.add(prediction(0, 1, 0, 0, t))
    board.evaluation.add(prediction(1, 2, 0, 0, t + 10))
    board.evaluation.add(prediction(1, 3, 0, 0, t + 20, role="shadow"))
    models = state(board, {}, t)["models"]
    roles = {m["model_version"]: (m["role"], m["problem"], m["served_predictions"]) for m in models}
    assert roles == {1: ("retired", "", 1), 2: ("champion", "", 1), 3: ("shadow", "", 0),
                     4: ("published", "bad-digest", 0)}


def test_static_files_ship_as_package_data() -> None:
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["streamscore"]
    static = resources.files("streamscore.dashboard") / "static"
    names = sorted(entry.name for entry in static.iterdir() if entry.is_file())
    assert {"index.html", "dashboard.js", "dashboard.css"} <= set(names)
    assert all(any(Path("dashboard/static", name).match(glob) for glob in globs) for name in names)
    page = (static / "index.html").read_text() + (static / "dashboard.js").read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page, "offline"


@pytest.fixture
def server() -> Any:
    generation = [1]
    running = DashboardServer(state=lambda: (generation[0], {"n": generation[0]}), summary=lambda: {"versions": {}},
                              pixels=lambda image_id: bytes(784) if image_id == "t10k-00001" else None,
                              port=0, push_interval_s=0.05)
    running.generation = generation  # type: ignore[attr-defined]
    yield running
    running.close()


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_server_serves_the_page_the_api_and_digits(server: DashboardServer) -> None:
    assert get(server.url)[:2] == (200, "text/html; charset=utf-8")
    assert get(server.url + "static/dashboard.js")[1] == "text/javascript; charset=utf-8"
    assert get(server.url + "api/summary") == (200, "application/json", b'{"versions": {}}')
    assert get(server.url + "api/digits/t10k-00001.png")[:2] == (200, "image/png")
    assert get(server.url + "api/digits/t10k-00002.png")[0] == 404
    assert get(server.url + "static/../live.py")[0] == 404
    assert get(server.url + "nowhere")[0] == 404


def test_event_stream_pushes_each_new_state(server: DashboardServer) -> None:
    with urllib.request.urlopen(server.url + "api/events", timeout=5) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert stream.readline() == b"retry: 2000\n" and stream.readline() == b"\n"
        assert stream.readline() == b"event: state\n"
        assert json.loads(stream.readline().removeprefix(b"data: ")) == {"n": 1}
        stream.readline()
        server.generation[0] = 2  # type: ignore[attr-defined]
        assert stream.readline() == b"event: state\n"
        assert json.loads(stream.readline().removeprefix(b"data: ")) == {"n": 2}


def test_a_port_in_use_is_a_config_error(server: DashboardServer) -> None:
    with pytest.raises(ConfigError, match=f"port {server.port} on 127.0.0.1 is in use") as caught:
        DashboardServer(state=lambda: (0, {}), summary=dict, pixels=lambda _id: None, port=server.port)
    assert caught.value.reason == "port-in-use"


def test_dashboard_help_explains_it() -> None:
    result = CliRunner().invoke(app, ["dashboard", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for words in ("--port", "--host", "--bootstrap", "server-sent events", "/api/summary", "Ctrl-C"):
        assert words in result.stdout


def test_models_in_force_read_plain_versioned_and_lifecycle_records() -> None:
    import hashlib

    from streamscore.models import bundled_model
    from streamscore.shared.messages import model_headers
    from streamscore.shared.model_records import artifact_headers, artifact_key, lifecycle_headers

    def headers(pairs: list[tuple[str, bytes | str | None]]) -> dict[str, bytes]:
        return {name: value if isinstance(value, bytes) else str(value).encode() for name, value in pairs}

    models = PublishedModels()
    v1, v2 = bundled_model(1).to_bytes(), bundled_model(2).to_bytes()
    models.add(b"mlp", v1, headers(model_headers(1, hashlib.sha256(v1).hexdigest())))  # a plain record
    models.add(artifact_key("mlp", 2), v2, headers(model_headers(2, hashlib.sha256(v2).hexdigest())
                                                   + artifact_headers("shadow")))
    snapshot = b'{"name": "mlp", "revision": 1}'
    models.add(b"mlp", snapshot, headers(lifecycle_headers(snapshot, 1, 1)))  # roles, not an artifact
    assert [(m.name, m.version, m.problem) for m in models.all()] == [("mlp", 1, ""), ("mlp", 2, "")]
