"""`streamscore dashboard` and `streamscore demo --dashboard` as a user runs them: processes, a URL, Ctrl-C.

About 15 s: the demo streams 300 images on its own embedded broker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from streamscore.shared.config import Settings

pytestmark = pytest.mark.slow

URL = re.compile(r"(http://127\.0\.0\.1:\d+/)")


@contextmanager
def command(*args: str, env: dict[str, str], cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-m", "streamscore.cli", *args], env=env | {"COLUMNS": "200"},
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def url_from(process: subprocess.Popen[str], marker: str, timeout: float = 90) -> tuple[str, list[str]]:
    """The URL printed on the first line containing ``marker`` (stdout read by a thread, with a deadline)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:  # until the end: the lines after the marker explain a failure
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if marker in line and URL.search(line):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"no {marker!r} line within {timeout:.0f}s; output: {''.join(lines)[-2000:]}")
    match = URL.search(next(line for line in lines if marker in line))
    assert match is not None
    return match.group(1), lines


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def test_dashboard_command_serves_until_ctrl_c(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    env = os.environ | {"STREAMSCORE_PREDICTIONS_TOPIC": settings.predictions_topic,
                        "STREAMSCORE_IMAGES_TOPIC": settings.images_topic,
                        "STREAMSCORE_MODELS_TOPIC": settings.models_topic, "STREAMSCORE_DLQ_TOPIC": settings.dlq_topic}
    with command("--bootstrap", settings.kafka_bootstrap, "dashboard", "--port", "0", env=env) as process:
        url, lines = url_from(process, "dashboard on")
        assert get_json(url + "api/summary") == {"versions": {}, "dlq": {}, "throughput_per_s": 0.0,
                                                 "latency_ms": {"p50": 0.0, "p99": 0.0}}
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, "".join(lines)[-3000:]


def test_demo_keeps_the_dashboard_up_after_the_run(tmp_path: Path) -> None:
    with command("demo", "--dashboard", "--port", "0", "--limit", "300", "--rate", "0", "--out", str(tmp_path),
                 env=dict(os.environ), cwd=tmp_path) as process:
        url, lines = url_from(process, "the dashboard stays on")
        summary = get_json(url + "api/summary")
        assert sum(v["predictions"] for v in summary["versions"].values()) == 300
        assert sum(summary["dlq"].values()) == 5, "the demo's malformed messages"
        assert "accuracy model v1" in "".join(lines), "the summary table comes before the wait"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, "".join(lines)[-3000:]
