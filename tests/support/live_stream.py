"""A stream for the dashboard tests: a real Scorer (DuckDB) in a thread on the session broker, and a dashboard on it."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streamscore.backends import open_backend
from streamscore.consumers.scorer import Scorer
from streamscore.dashboard import Dashboard
from streamscore.models import bundled_model
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics


@dataclass
class LiveStream:
    scorer: Scorer
    dashboard: Dashboard
    errors: list[BaseException]

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.dashboard.url + path.lstrip("/"), timeout=10) as answer:
            return json.load(answer)


@contextlib.contextmanager
def live_stream(settings: Settings, version: int = 2) -> Iterator[LiveStream]:
    """Publish the bundled model ``version``, run a Scorer and a dashboard (free port) until the block ends."""
    ensure_topics(settings)
    publish_model(settings, bundled_model(version))
    scorer = Scorer(settings, open_backend(settings.backend_url))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scorer.run()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="scorer", daemon=True)
    thread.start()
    try:
        if not scorer.ready.wait(30):
            raise AssertionError("the consumer did not join its group within 30 s")
        with Dashboard(settings, port=0) as board:
            yield LiveStream(scorer, board, errors)
            board.raise_failure()
    finally:
        scorer.stop.set()
        thread.join(30)
