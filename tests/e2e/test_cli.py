"""The public commands, run as a user would: separate processes against the embedded broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from streamscore.consumers.prediction_reader import read_predictions
from streamscore.models import bundled_path
from streamscore.shared.config import Settings

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamscore.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def environment(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "STREAMSCORE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMSCORE_IMAGES_TOPIC": settings.images_topic,
        "STREAMSCORE_PREDICTIONS_TOPIC": settings.predictions_topic,
        "STREAMSCORE_MODELS_TOPIC": settings.models_topic,
        "STREAMSCORE_DLQ_TOPIC": settings.dlq_topic,
        "STREAMSCORE_GROUP": settings.group,
        "STREAMSCORE_PARTITIONS": "2",
        "COLUMNS": "200",
    }


def test_help_names_every_command() -> None:
    result = cli("--help", env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 0
    for command in ("demo", "broker", "produce", "consume", "publish-model", "evaluate", "train", "bench", "db",
                    "status", "export-onnx", "keys"):
        assert command in result.stdout


def test_python_dash_m_streamscore_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "streamscore", "produce", "--rate", "-5"], capture_output=True,
                            text=True, timeout=60, check=False, env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 2 and result.stderr.startswith("error (usage): Invalid value for '--rate'"), \
        result.stderr


def test_produce_consume_evaluate(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings()
    env = environment(settings)
    database = tmp_path / "cli.duckdb"
    published = cli("publish-model", str(bundled_path(2)), env=env)
    assert published.returncode == 0, published.stderr
    assert "published mlp v2" in published.stdout

    produced = cli("produce", "--limit", "400", "--rate", "2000", env=env)
    assert produced.returncode == 0, produced.stderr
    assert "delivered 400" in produced.stdout

    consumer = subprocess.Popen(
        [sys.executable, "-m", "streamscore.cli", "--backend", f"duckdb:///{database}", "consume",  # global form
         "--batch-size", "100"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        evaluation = cli("evaluate", "--expect", "400", "--out", str(tmp_path / "report"), env=env, timeout=90)
        assert evaluation.returncode == 0, evaluation.stderr
    finally:
        consumer.send_signal(signal.SIGTERM)
        out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err
    assert "scored 400" in out
    assert f"as group {settings.group} into duckdb:///{database}" in err, "consume says where it writes"

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["images"] == 400
    assert [v["model_version"] for v in report["versions"]] == [2]
    assert [(r["backend"], r["model_version"]) for r in report["by_backend"]] == [("duckdb", 2)]
    assert report["versions"][0]["accuracy"] > 0.95
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 10_000
    assert (tmp_path / "report" / "misclassified.png").stat().st_size > 10_000
    assert report["gallery"]["source"] == "images topic" and not report["gallery"]["pixels_missing"]
    assert report["gallery"]["shown"] == min(50, 400 - report["versions"][0]["correct"])
    with duckdb.connect(str(database), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM predictions").fetchall() == [(400,)]

    status = cli("status", "--json", "--backend", f"duckdb:///{database}", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["installed_model_versions"] == [2] and report["published_model_versions"] == [2]
    assert report["dead_letters"] == 0
    partitions = report["partitions"]
    assert len(partitions) == 2
    committed = sum(p["committed"] for p in partitions)
    stored = sum(p["stored"] for p in partitions)
    assert committed == stored == 400, "Kafka and the database agree that all 400 images are done"


def model_versions_in_topic_order(settings: Settings) -> list[int]:
    """model-version of the records keyed by the model name (what compaction keeps one of): plain
    artifact records and lifecycle snapshots (which name the champion); versioned artifact keys aside."""
    from streamscore.shared.kafka import assign_from_beginning, make_consumer
    from streamscore.shared.messages import headers_to_dict

    consumer = make_consumer(settings, f"{settings.group}.check")
    try:
        assign_from_beginning(consumer, settings.models_topic)
        messages = []
        while batch := consumer.consume(100, 1.0):
            messages.extend(m for m in batch if not m.error())
    finally:
        consumer.close()
    return [int(headers_to_dict(m.headers())["model-version"]) for m in messages
            if m.key() == settings.model_name.encode()]


def test_publishing_an_older_version_is_refused_unless_forced(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    env = environment(settings)
    assert cli("publish-model", str(bundled_path(2)), env=env).returncode == 0

    refused = cli("publish-model", str(bundled_path(1)), env=env)
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "not newer than v2" in refused.stderr and "--force" in refused.stderr
    same = cli("publish-model", str(bundled_path(2)), env=env)
    assert same.returncode == 2, "the same version again is not newer either"
    assert model_versions_in_topic_order(settings) == [2]

    forced = cli("publish-model", str(bundled_path(1)), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert model_versions_in_topic_order(settings)[-1] == 2, \
        "the newest stays the model's last record: compaction can never leave v1 behind"
    newer = cli("publish-model", str(bundled_path(1)), "--version", "3", env=env)
    assert newer.returncode == 0, newer.stderr
    assert model_versions_in_topic_order(settings) == [2, 1, 2, 3]


def test_a_forced_publish_after_a_rollback_keeps_the_rolled_back_state_last(
        make_settings: Callable[..., Settings]) -> None:
    """issue 11 item 4: the record appended again is the state readers apply (champion v2 after the
    rollback), not the older snapshot that names the newest version (v3), which compaction would keep."""
    settings = make_settings()
    env = environment(settings)
    for version in (1, 2, 3):
        assert cli("publish-model", str(bundled_path(version)), env=env).returncode == 0
    rolled = cli("models", "rollback", settings.model_name, env=env)
    assert rolled.returncode == 0, rolled.stderr
    forced = cli("publish-model", str(bundled_path(1)), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "not newer than v3" in forced.stdout
    assert model_versions_in_topic_order(settings)[-2:] == [1, 2], "the rolled-back state (champion v2) stays last"


def test_demo_report_carries_what_the_table_shows(tmp_path: Path) -> None:
    result = cli("demo", "--limit", "300", "--rate", "0", "--out", str(tmp_path), env=dict(os.environ, COLUMNS="200"),
                 timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    from streamscore.demo import MALFORMED

    assert report["run"]["produced"] == {"images": 300, "malformed": len(MALFORMED)}
    assert report["dead_lettered"]["total"] == len(MALFORMED) == sum(report["dead_lettered"]["by_reason"].values())
    assert report["run"]["dead_lettered_by_the_consumer"] == len(MALFORMED), "the consumer and the DLQ topic agree"
    table_row = next(line for line in result.stdout.splitlines() if "dead-lettered (mnist.dlq)" in line)
    assert f" {len(MALFORMED)} (" in table_row, table_row
    assert report["settings"]["backend"].startswith("duckdb:///") and report["backends"] == ["duckdb"]
    assert sorted(report["model_digests"]) == ["v1", "v2"]
    assert all(len(digest) == 64 for digest in report["model_digests"].values())
    assert report["generated_at"].endswith("+00:00") and report["images"] == 300
    assert (tmp_path / "misclassified.png").stat().st_size > 10_000, "the gallery lies beside confusion.png"
    assert report["gallery"]["shown"] > 0 and "misclassified digits" in result.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--from-backend", "duckdb:///{tmp}/nothing-here.duckdb"), "no DuckDB file at"),
    (("--from-backend", "duckdb:///{tmp}/x.duckdb", "--follow"), "--from-backend reads the database once"),
    (("--from-backend", "nosuch://db"), "unknown backend scheme"),
])
def test_evaluate_from_backend_refuses_in_one_line(args: tuple[str, ...], says: str, tmp_path: Path) -> None:
    result = cli("evaluate", *(arg.format(tmp=tmp_path) for arg in args), env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], "one line"
    assert says in result.stderr
    assert not (tmp_path / "nothing-here.duckdb").exists(), "no empty database is created"


@pytest.mark.parametrize("where", ["command", "global"])
def test_bad_backend_url_is_a_clear_error(make_settings: Callable[..., Settings], where: str) -> None:
    backend = ["--backend", "postgress://x@localhost/db"]
    args = ["db", "init", *backend] if where == "command" else [*backend, "db", "init"]
    result = cli(*args, env=environment(make_settings()))
    assert result.returncode == 2
    assert "Did you mean 'postgres'" in result.stderr or "Did you mean 'postgresql'" in result.stderr


def test_consume_stops_at_once_on_a_database_path_that_can_never_open(make_settings: Callable[..., Settings],
                                                                      tmp_path: Path) -> None:
    """A folder where the DuckDB file should be is permanent: one line and exit 2, not endless retries."""
    folder = tmp_path / "scores.duckdb"
    folder.mkdir()
    result = cli("consume", "--backend", f"duckdb:///{folder}", env=environment(make_settings()), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "is a folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ("produce", "--rate", "-5"),
    ("produce", "--rate", "0"),
    ("produce", "--limit", "-1"),
    ("demo", "--rate", "-1"),
    ("demo", "--limit", "-1"),
    ("consume", "--batch-size", "0"),
    ("consume", "--workers", "0"),
    ("consume", "--metrics-port", "70000"),
    ("broker", "--port", "-1"),
    ("evaluate", "--idle", "0"),
    ("publish-model", str(bundled_path(1)), "--version", "0"),
])
def test_invalid_options_are_refused_before_anything_runs(args: tuple[str, ...]) -> None:
    result = cli(*args, env=dict(os.environ, COLUMNS="200", STREAMSCORE_KAFKA_BOOTSTRAP="127.0.0.1:1"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], "one line"
    assert result.stderr.startswith(f"error (usage): Invalid value for '{args[-2]}'")


@pytest.mark.parametrize("url", ["foo://x", "duckdb:///x.duckdb?colour=blue"])
def test_consume_refuses_a_bad_backend_url_before_asking_kafka(url: str) -> None:
    # Kafka unreachable with the default 15 s wait: an answer within the 10 s limit means it was not asked
    result = cli("consume", "--backend", url, env=dict(os.environ, COLUMNS="200",
                                                       STREAMSCORE_KAFKA_BOOTSTRAP="127.0.0.1:1"), timeout=10)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], "one line"
    assert result.stderr.startswith("error (config):")


def unused_port() -> int:
    from streamscore.broker.embedded import free_port

    return free_port()


@pytest.mark.parametrize("log_json", [False, True])
def test_status_with_kafka_unreachable_is_one_line_and_exit_2(log_json: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STREAMSCORE_KAFKA_BOOTSTRAP"} | {
        "COLUMNS": "200", "STREAMSCORE_KAFKA_TIMEOUT_S": "2"}
    address = f"127.0.0.1:{unused_port()}"
    flags = ["--log-json"] if log_json else []
    result = cli(*flags, "--bootstrap", address, "status", "--no-database", env=env, timeout=60)  # global options
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, "one line, no log noise"
    message = json.loads(lines[0])["message"] if log_json else lines[0]
    assert f"cannot reach Kafka at {address}" in message and "streamscore broker" in message


@pytest.mark.parametrize("args", [("evaluate", "--idle", "1"), ("produce", "--limit", "10"), ("models", "list")])
def test_commands_with_kafka_unreachable_end_in_one_error_line(args: tuple[str, ...], tmp_path: Path) -> None:
    env = dict(os.environ, COLUMNS="200", STREAMSCORE_KAFKA_BOOTSTRAP=f"127.0.0.1:{unused_port()}",
               STREAMSCORE_KAFKA_TIMEOUT_S="2")  # how long commands wait for Kafka (default 15 s)
    result = cli(*args, "--bootstrap", env["STREAMSCORE_KAFKA_BOOTSTRAP"], env=env, timeout=90)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, "one line, no librdkafka log before it"
    assert lines[0].startswith("error (kafka") and "Kafka" in lines[0]


def test_missing_tensorflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamscore.errors import MissingDependencyError
    from streamscore.model.trainer import import_tensorflow

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'streamscore\[train\]'"):
        import_tensorflow()


def test_stop_is_graceful_while_waiting(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    env = environment(make_settings())
    consumer = subprocess.Popen(
        [sys.executable, "-m", "streamscore.cli", "--log-json", "consume", "--backend", f"duckdb:///{tmp_path}/w.duckdb"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert consumer.stderr is not None
    seen = []
    for line in consumer.stderr:  # until the consumer says it waits for a model (a JSON log event)
        seen.append(line)
        if line.startswith("{") and json.loads(line).get("event") == "waiting-for-model":
            break
    else:
        raise AssertionError("consume exited before waiting for a model:\n" + "".join(seen))
    consumer.send_signal(signal.SIGINT)
    out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err
    assert "scored 0" in out


def test_consume_without_a_backend_says_which_default_it_uses(make_settings: Callable[..., Settings],
                                                              tmp_path: Path) -> None:
    import threading

    env = {k: v for k, v in environment(make_settings()).items() if k != "STREAMSCORE_BACKEND"}
    import streamscore

    # run in an empty folder: the package must come from the same place as in this process
    env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve().parent) for p in streamscore.__path__)
    consumer = subprocess.Popen([sys.executable, "-m", "streamscore.cli", "consume"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    told = threading.Event()

    def read() -> None:
        for line in consumer.stderr or []:
            said.append(line)
            if "using the default" in line:
                told.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert told.wait(60), "".join(said)
    finally:
        consumer.send_signal(signal.SIGINT)
        consumer.communicate(timeout=30)
        reader.join(10)
    text = "".join(said)
    assert "into duckdb:///streamscore.duckdb" in text and "own consumer group" in text


def test_evaluate_follow_shows_live_table_and_stops_on_sigint(make_settings: Callable[..., Settings],
                                                             tmp_path: Path) -> None:
    settings = make_settings()
    env = environment(settings)
    assert cli("publish-model", str(bundled_path(1)), env=env).returncode == 0
    follower = subprocess.Popen(
        [sys.executable, "-m", "streamscore.cli", "evaluate", "--follow", "--out", str(tmp_path / "live")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert cli("produce", "--limit", "200", env=env).returncode == 0
    consumer = subprocess.Popen(
        [sys.executable, "-m", "streamscore.cli", "consume", "--backend", f"duckdb:///{tmp_path}/f.duckdb"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # all 200 are on the topic: on Ctrl-C the follower reads up to the topic's end before its report
        assert len(read_predictions(settings, expect=200).image_ids()) == 200
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.communicate(timeout=30)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    report = json.loads((tmp_path / "live" / "report.json").read_text())
    assert report["images"] == 200
    assert "accuracy per model version" in out


def test_broker_prints_its_bootstrap_and_stops_on_sigterm() -> None:
    broker = subprocess.Popen([sys.executable, "-m", "streamscore.cli", "broker", "--port", "0"],
                              env=dict(os.environ, COLUMNS="200"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = broker.stdout.readline() if broker.stdout else ""
        assert "bootstrap: 127.0.0.1:" in line
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.communicate(timeout=30)
    assert broker.returncode == 0


def test_sigkill_of_the_broker_command_takes_tansu_down_with_it() -> None:
    import re
    import socket

    broker = subprocess.Popen([sys.executable, "-m", "streamscore.cli", "broker", "--port", "0"],
                              env=dict(os.environ, COLUMNS="200"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = broker.stdout.readline() if broker.stdout else ""
        found = re.search(r"bootstrap: 127\.0\.0\.1:(\d+)", line)
        assert found, line
        port = int(found.group(1))
        assert "memory storage" in (broker.stdout.readline() + broker.stdout.readline() if broker.stdout else "")
    finally:
        broker.kill()
        broker.communicate(timeout=30)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            return False

    deadline = time.monotonic() + 15
    while answers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not answers(), f"the Tansu child still listens on {port} after its parent was SIGKILLed"


@pytest.mark.tensorflow
def test_demo_with_the_cnn_shows_the_accuracy_step(tmp_path: Path) -> None:
    result = cli("demo", "--models", "v2,cnn", "--limit", "400", "--rate", "400", "--out", str(tmp_path),
                 env=dict(os.environ, COLUMNS="200"), timeout=180)
    assert result.returncode == 0, result.stderr
    assert "promoting v4 (the shadow) to champion" in result.stdout
    assert "accuracy model v4 (shadow)" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report["model_digests"]) == ["v2", "v4"]
    assert "accuracy step v2 → v4 (served)" in result.stdout


def test_train_writes_and_publishes_a_verified_artifact(mnist_dir: Path, tmp_path: Path,
                                                        make_settings: Callable[..., Settings]) -> None:
    pytest.importorskip("tensorflow", reason="TensorFlow not installed: pip install 'streamscore[train]'")
    if not (mnist_dir / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no MNIST training set in {mnist_dir}; set STREAMSCORE_MNIST_DIR")
    out = tmp_path / "m.npz"
    settings = make_settings()
    env = environment(settings) | {"STREAMSCORE_MNIST_DIR": str(mnist_dir)}
    result = cli("train", "--version", "7", "--steps", "200", "--out", str(out), "--publish", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "as champion" in result.stdout
    from streamscore.producers.lifecycle import read_topic

    assert read_topic(settings, "mlp").lifecycle.champion == 7, "published through the lifecycle, as publish-model"
    status = cli("status", "--json", "--no-database", env=env)
    assert json.loads(status.stdout)["published_model_versions"] == [7]
    from streamscore.model.artifact import load_artifact

    artifact = load_artifact(out)
    assert artifact.version == 7 and artifact.layer_sizes == [784, 100, 10]
    assert artifact.manifest["metrics"]["test_accuracy"] > 0.8


def _duckdb_with_old_and_new_images(path: Path) -> None:
    """Three images with predictions stored 2 days ago, two stored now, and their offsets."""
    import numpy as np

    from streamscore.backends import ImageBatch, ModelRef, SourceOffset, open_backend
    from streamscore.models import bundled_model
    from streamscore.shared.mnist import load_split

    split = load_split("test")
    with open_backend(f"duckdb:///{path}") as database:
        database.init_schema()
        database.install_model(bundled_model(2))
        for rows, batch_id in (([0, 1, 2], "old"), ([3, 4], "new")):
            ids = [f"img-{row}" for row in rows]
            database.write_batch(ImageBatch(
                batch_id, ids, split.images[rows], split.labels[rows].astype("int16"),
                np.full(len(rows), 1_700_000_000_000, np.int64), [SourceOffset("t", 0, row) for row in rows],
                {("t", 0): rows[-1] + 1}), ModelRef("mlp", 2), "g")
        database.con.execute(  # type: ignore[attr-defined]
            "UPDATE images SET ingested_at = ingested_at - INTERVAL 2 DAY WHERE batch_id = 'old'")


def _purge(*args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamscore.cli", "db", "purge", *args], input=answer,
                          env=dict(os.environ, COLUMNS="200"), capture_output=True, text=True, timeout=120,
                          check=False)


def test_db_purge_asks_first_and_says_what_it_deleted(tmp_path: Path) -> None:
    path = tmp_path / "purge.duckdb"
    _duckdb_with_old_and_new_images(path)
    url = f"duckdb:///{path}"

    declined = _purge("--older-than", "1d", "--backend", url, answer="n\n")
    assert declined.returncode == 1 and "Delete the images stored more than 1d ago" in declined.stdout
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM images").fetchall() == [(5,)]

    confirmed = _purge("--older-than", "1d", "--backend", url, answer="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "deleted 3 image(s) and 3 prediction(s)" in confirmed.stdout

    unasked = _purge("--older-than", "12h", "--backend", url, "--yes")
    assert unasked.returncode == 0, unasked.stderr
    assert "deleted 0 image(s) and 0 prediction(s)" in unasked.stdout and "Delete the" not in unasked.stdout
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT image_id FROM images ORDER BY 1").fetchall() == [("img-3",), ("img-4",)]
        assert db.execute("SELECT count(*) FROM predictions").fetchall() == [(2,)]
        assert db.execute("SELECT next_offset FROM consumer_offsets").fetchall() == [(5,)]
        assert db.execute("SELECT count(*) FROM models").fetchall() == [(1,)]


@pytest.mark.parametrize("duration", ["7", "0d", "-1h", "soon"])
def test_db_purge_refuses_a_bad_duration_in_one_line(duration: str, tmp_path: Path) -> None:
    result = _purge("--older-than", duration, "--backend", f"duckdb:///{tmp_path / 'x.duckdb'}", "--yes")
    assert result.returncode == 2
    assert "--older-than" in result.stderr and "e.g. 7d, 12h or 30m" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.duckdb").exists()


def test_export_onnx_agrees_with_the_numpy_reference(tmp_path: Path) -> None:
    import numpy as np

    from streamscore.model.artifact import load_artifact
    from streamscore.model.reference import predict
    from streamscore.shared.mnist import load_split

    ort = pytest.importorskip("onnxruntime", reason="pip install onnxruntime (dev extra)")
    pytest.importorskip("onnx", reason="pip install 'streamscore[onnx]'")
    out = tmp_path / "models" / "mlp-v2.onnx"
    result = cli("export-onnx", str(bundled_path(2)), str(out), env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: mlp v2 as ONNX" in result.stdout

    images = load_split("test").images[:1_000]
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    probabilities, labels = session.run(["probabilities", "label"], {"pixels": images.astype(np.float32)})
    reference = load_artifact(bundled_path(2)).forward(images)
    assert np.array_equal(predict(probabilities), predict(reference))
    assert np.array_equal(labels, predict(reference))
    assert float(np.abs(probabilities - reference).max()) <= 1e-4


def test_export_onnx_without_onnx_names_the_extra(tmp_path: Path) -> None:
    hide_onnx = ("import sys; sys.modules['onnx'] = None; sys.argv[0] = 'streamscore'; "
                 "from streamscore.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", hide_onnx, "export-onnx", str(bundled_path(2)),
                             str(tmp_path / "m.onnx")], env=dict(os.environ, COLUMNS="200"), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "pip install 'streamscore[onnx]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()



def test_signed_models_keys_generate_publish_and_a_consumer_that_verifies(make_settings: Callable[..., Settings],
                                                                          tmp_path: Path) -> None:
    from streamscore.models import bundled_model
    from streamscore.producers.images import produce_images
    from streamscore.producers.models import publish_model
    from streamscore.shared.mnist import load_split

    settings = make_settings()
    env = environment(settings)
    generated = cli("keys", "generate", "--out", str(tmp_path / "keys"), env=env)
    assert generated.returncode == 0, generated.stderr
    private, public = tmp_path / "keys" / "model-signing.key.pem", tmp_path / "keys" / "model-signing.pub.pem"
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    published = cli("publish-model", str(bundled_path(1)), "--sign-key", str(private), env=env)
    assert published.returncode == 0, published.stderr
    assert "signed by key" in published.stdout
    publish_model(settings, bundled_model(2))  # unsigned, and newer
    produce_images(settings, load_split("test"), limit=100)
    consumer = subprocess.Popen(
        [sys.executable, "-m", "streamscore.cli", "consume", "--backend", f"duckdb:///{tmp_path}/signed.duckdb"],
        env=env | {"STREAMSCORE_MODEL_PUBLIC_KEY_FILE": str(public)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        evaluation = read_predictions(settings, expect=100)
    finally:
        consumer.send_signal(signal.SIGTERM)
        _out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err
    assert len(evaluation.image_ids()) == 100 and [v.version for v in evaluation.versions()] == [1]
    events = evaluation.rejections or read_predictions(settings, idle_timeout=1.0).rejections
    assert [(version, reason) for _, version, reason, _, _ in events] == [(2, "unsigned")]
    assert "accepting only models signed by key" in err and "NOT verified" not in err
