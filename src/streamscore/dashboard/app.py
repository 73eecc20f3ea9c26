"""The live dashboard: readers of the four topics, the state they fill, and the HTTP server.

``Dashboard(settings).start()`` reads the evaluation topic with the evaluate command's reader
(:func:`~streamscore.consumers.prediction_reader.read_predictions`, ``follow=True``) into a
:class:`~streamscore.dashboard.live.LiveEvaluation`, and the images, dead-letter and models
topics with one more consumer; both read from the beginning and commit nothing. A reader that
fails (Kafka unreachable at start) sets ``stopped``; :meth:`Dashboard.raise_failure` re-raises
its error in the caller's thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from streamscore.consumers.prediction_reader import read_predictions
from streamscore.dashboard.live import LiveEvaluation
from streamscore.dashboard.pixels import PixelCache
from streamscore.dashboard.server import DashboardServer
from streamscore.dashboard.topics import PublishedModels, SideTopicsReader
from streamscore.dashboard.views import Sources, state, summary
from streamscore.ops.topic_summary import DeadLetters
from streamscore.shared.config import Settings
from streamscore.shared.messages import now_ms

#: the page's state is rebuilt at most this often, however many browsers watch
STATE_MAX_AGE_S = 0.5


class Dashboard:
    """Start with :meth:`start` (or ``with``); :meth:`close` stops the readers and the server."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8050) -> None:
        self.settings, self.host, self.port = settings, host, port
        self.stopped = threading.Event()
        pixels = PixelCache()
        self.sources = Sources(LiveEvaluation(on_misclassified=pixels.keep), DeadLetters(), PublishedModels(), pixels)
        self._dlq_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._state: tuple[int, dict[str, Any]] = (0, {})
        self._state_built = 0.0
        self._failures: list[BaseException] = []
        self._readers: list[threading.Thread] = []
        self._server: DashboardServer | None = None

    def start(self) -> Dashboard:
        self._server = DashboardServer(state=self.state, summary=self.summary, pixels=self.sources.pixels.get,
                                       host=self.host, port=self.port)
        predictions = threading.Thread(target=self._read_predictions, name="dashboard-predictions", daemon=True)
        side = SideTopicsReader(self.settings, self.sources.pixels, self.sources.dead_letters, self._dlq_lock,
                                self.sources.models, self.stopped)
        self._readers = [predictions, side]
        for reader in self._readers:
            reader.start()
        return self

    def _read_predictions(self) -> None:
        try:
            read_predictions(self.settings, follow=True, stop=self.stopped, evaluation=self.sources.evaluation)
        except BaseException as exc:  # re-raised in the caller's thread by raise_failure
            self._failures.append(exc)
            self.stopped.set()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the dashboard is not started")
        return self._server.url

    def summary(self) -> dict[str, Any]:
        """The public ``/api/summary`` document."""
        return summary(self.sources, self._dead_letters())

    def state(self) -> tuple[int, dict[str, Any]]:
        """(generation, the page's state), rebuilt at most every STATE_MAX_AGE_S; the generation
        changes only when the state did (the event stream pushes only then)."""
        with self._state_lock:
            if time.monotonic() - self._state_built >= STATE_MAX_AGE_S:
                generation, previous = self._state
                built = state(self.sources, self._dead_letters(), now_ms())
                if _without_clock(built) != _without_clock(previous):
                    generation += 1
                self._state, self._state_built = (generation, built), time.monotonic()
            return self._state

    def _dead_letters(self) -> dict[str, int]:
        with self._dlq_lock:
            return dict(sorted(self.sources.dead_letters.by_reason.items()))

    def raise_failure(self) -> None:
        """Re-raise the error that stopped a reader, if one did."""
        side_failures = [r.failure for r in self._readers if isinstance(r, SideTopicsReader) and r.failure]
        for failure in self._failures + side_failures:
            raise failure

    def close(self) -> None:
        self.stopped.set()
        if self._server is not None:
            self._server.close()
        for reader in self._readers:
            reader.join(10)

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _without_clock(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "generated_at"}


def serve_until(dashboard: Dashboard, stop: threading.Event) -> None:
    """Block until ``stop`` (Ctrl-C) or a reader fails; re-raise that reader's error."""
    while not stop.wait(0.5) and not dashboard.stopped.is_set():
        pass
    dashboard.raise_failure()
