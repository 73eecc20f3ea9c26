"""The dashboard's evaluation: served predictions only, each (image id, model version) once, tallied on arrival.

:class:`LiveEvaluation` is an :class:`~streamscore.consumers.evaluator.Evaluation` fed by the
evaluate command's own reader (``read_predictions(follow=True, evaluation=…)``), so reading the
topic, riding out an unreachable Kafka and counting malformed predictions work as in
``streamscore evaluate --follow``. It differs from its base in three ways:

* only served predictions count (role ``champion`` or ``ensemble``); shadow predictions are
  never served (DESIGN.md) and only mark their model as a shadow in the models panel;
* the de-duplication key is (image id, model version), as ``/api/summary`` is specified: two
  backends scoring one image with one version count once (the first to arrive);
* no ``Prediction`` is kept: counts, confusion matrices, latencies and the time series are
  updated as predictions arrive, so a snapshot costs the same after an hour as after a minute.
  The (image id, model version) keys are what grows with the stream: "counted once" needs them.

Every method is thread-safe: the reader thread adds while HTTP threads take snapshots.
"""

from __future__ import annotations

import copy
import threading
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamscore.consumers.evaluator import Evaluation, VersionReport
from streamscore.shared.messages import Prediction

#: roles whose predictions are served (and counted); "shadow" is scored but never served
SERVED_ROLES = frozenset({"champion", "ensemble"})
#: labelled predictions per version in the sliding window of the accuracy chart
ACCURACY_WINDOW = 500
#: seconds of stream time (by scored-at) the time series keep
SERIES_SECONDS = 600
#: the throughput of /api/summary: served predictions per second over this much of the newest stream time
THROUGHPUT_WINDOW_S = 10.0
#: misclassified digits the gallery shows (the newest)
MISCLASSIFIED_SHOWN = 24
#: 100 ms buckets of the throughput counts
BUCKET_MS = 100


@dataclass(frozen=True)
class Misclassified:
    image_id: str
    model_version: int
    label: int
    predicted: int
    probability: float
    scored_at: int


@dataclass
class VersionTrack:
    """One model version's tallies beyond its :class:`VersionReport`: window, series, who scored it."""

    report: VersionReport
    model_name: str
    window: deque[bool] = field(default_factory=lambda: deque(maxlen=ACCURACY_WINDOW))
    #: stream second (scored-at // 1000) → accuracy of the window once that second's predictions were in
    accuracy_series: dict[int, float] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)
    last_scored_at: int = 0


class LiveEvaluation(Evaluation):
    """Served predictions tallied as they arrive; ``on_misclassified(image_id)`` is called for each wrong one."""

    def __init__(self, on_misclassified: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._on_misclassified = on_misclassified
        self._seen: set[tuple[str, int]] = set()
        self._ids: set[str] = set()
        self._tracks: dict[int, VersionTrack] = {}
        self._by_backend: dict[tuple[str, int], VersionReport] = {}
        self._latencies = array("q")
        self._buckets: dict[int, int] = {}
        self._first_scored_at = 0
        self._last_scored_at = 0
        self._misclassified: deque[Misclassified] = deque(maxlen=MISCLASSIFIED_SHOWN)
        #: (model name, version, role) → newest scored-at, for every role (shadows included)
        self._role_seen: dict[tuple[str, int, str], int] = {}
        #: (model name, version, role) of the served prediction with the newest scored-at
        self._serving: tuple[str, int, str] | None = None
        self.shadow_predictions = 0

    def add(self, prediction: Prediction) -> bool:
        """Count a served prediction once per (image id, model version); False for shadows and repeats."""
        p = prediction
        if not _plausible(p):
            self.malformed += 1  # parseable, but not a digit: it must not stop the dashboard's reader
            return False
        wrong = False
        with self._lock:
            role_key = (p.model_name, p.model_version, p.role)
            self._role_seen[role_key] = max(self._role_seen.get(role_key, 0), p.scored_at)
            if p.role not in SERVED_ROLES:
                self.shadow_predictions += 1
                return False
            key = (p.image_id, p.model_version)
            if key in self._seen:
                self.duplicates += 1
                return False
            self._seen.add(key)
            self._ids.add(p.image_id)
            track = self._tracks.get(p.model_version)
            if track is None:
                track = self._tracks[p.model_version] = VersionTrack(_empty_report(p.model_version), p.model_name)
            track.roles.add(p.role)
            track.last_scored_at = max(track.last_scored_at, p.scored_at)
            backend_report = self._by_backend.setdefault((p.backend, p.model_version),
                                                         _empty_report(p.model_version, p.backend))
            for report in (track.report, backend_report):
                _count(report, p)
            if p.label is not None:
                track.window.append(p.label == p.predicted)
                track.accuracy_series[p.scored_at // 1000] = sum(track.window) / len(track.window)
                wrong = p.label != p.predicted
                if wrong:
                    self._misclassified.append(Misclassified(p.image_id, p.model_version, p.label, p.predicted,
                                                             float(p.probabilities[p.predicted]), p.scored_at))
            if p.produced_at > 0:
                self._latencies.append(p.scored_at - p.produced_at)
            bucket = p.scored_at // BUCKET_MS
            self._buckets[bucket] = self._buckets.get(bucket, 0) + 1
            self._stamp(p)
        if wrong and self._on_misclassified is not None:
            self._on_misclassified(p.image_id)
        return True

    def _stamp(self, p: Prediction) -> None:
        if not self._first_scored_at or p.scored_at < self._first_scored_at:
            self._first_scored_at = p.scored_at
        if p.scored_at >= self._last_scored_at:
            self._last_scored_at = p.scored_at
            self._serving = (p.model_name, p.model_version, p.role)
            self._trim()

    def _trim(self) -> None:
        """Drop time-series points older than SERIES_SECONDS of stream time (amortized: in chunks)."""
        oldest_bucket = (self._last_scored_at - SERIES_SECONDS * 1000) // BUCKET_MS
        if len(self._buckets) > SERIES_SECONDS * 1000 // BUCKET_MS * 1.2:
            self._buckets = {b: n for b, n in self._buckets.items() if b >= oldest_bucket}
        for track in self._tracks.values():
            if len(track.accuracy_series) > SERIES_SECONDS * 1.2:
                oldest = self._last_scored_at // 1000 - SERIES_SECONDS
                track.accuracy_series = {s: a for s, a in track.accuracy_series.items() if s >= oldest}

    # --- the base class's questions, answered from the tallies ---------------------------------

    def image_ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)

    def _tally(self, by_backend: bool, by_role: bool = False) -> list[VersionReport]:
        """Served predictions only (shadows are never counted here), so ``by_role`` changes nothing."""
        with self._lock:
            reports = self._by_backend if by_backend else {("", v): t.report for v, t in self._tracks.items()}
            return [copy.deepcopy(reports[key]) for key in sorted(reports)]

    def backends(self) -> list[str]:
        with self._lock:
            return sorted({backend for backend, _version in self._by_backend})

    def latencies_ms(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        with self._lock:
            return np.frombuffer(self._latencies.tobytes(), np.int64).copy()

    def throughput(self) -> float | None:
        """Images per second between the first and the newest served prediction (as the base class)."""
        with self._lock:
            span_ms = self._last_scored_at - self._first_scored_at
            return len(self._seen) / (span_ms / 1000) if span_ms > 0 else None

    def to_json(self) -> dict[str, Any]:
        """The base class's report; ``predictions`` counts the served (image id, version) pairs (none is kept)."""
        body = super().to_json()
        with self._lock:
            body["predictions"] = len(self._seen)
        return body

    # --- what the dashboard adds ------------------------------------------------------------------

    def recent_throughput(self, window_s: float = THROUGHPUT_WINDOW_S) -> float:
        """Served predictions per second over the newest ``window_s`` of stream time (by scored-at)."""
        with self._lock:
            span_ms = min(window_s * 1000, self._last_scored_at - self._first_scored_at)
            if span_ms <= 0:
                return 0.0
            start = self._last_scored_at - span_ms
            counted = sum(n for bucket, n in self._buckets.items() if (bucket + 1) * BUCKET_MS > start)
            return counted / (span_ms / 1000)

    def throughput_series(self, seconds: int = 120) -> list[tuple[int, int]]:
        """(stream second, served predictions scored in it) for the newest ``seconds`` (since the first), gaps as 0."""
        with self._lock:
            if not self._last_scored_at:
                return []
            last = self._last_scored_at // 1000
            first = max(last - seconds + 1, self._first_scored_at // 1000)
            per_second = dict.fromkeys(range(first, last + 1), 0)
            for bucket, n in self._buckets.items():
                second = bucket * BUCKET_MS // 1000
                if second in per_second:
                    per_second[second] += n
            return sorted(per_second.items())

    def accuracy_series(self) -> dict[int, list[tuple[int, float]]]:
        """Per version: (stream second, accuracy of its last ACCURACY_WINDOW labelled predictions)."""
        with self._lock:
            return {v: sorted(t.accuracy_series.items()) for v, t in sorted(self._tracks.items())}

    def misclassified(self) -> list[Misclassified]:
        """The newest misclassified served predictions, newest first."""
        with self._lock:
            return list(reversed(self._misclassified))

    def roles_seen(self) -> dict[tuple[str, int, str], int]:
        """(model name, version, role) → newest scored-at, shadows included."""
        with self._lock:
            return dict(self._role_seen)

    def serving(self) -> tuple[str, int, str] | None:
        """(model name, version, role) of the newest served prediction."""
        with self._lock:
            return self._serving

    def model_names(self) -> dict[int, str]:
        with self._lock:
            return {v: t.model_name for v, t in self._tracks.items()}

    def image_count(self) -> int:
        """Distinct image ids with a served prediction (without copying them, unlike image_ids())."""
        with self._lock:
            return len(self._ids)

    def last_scored_at(self) -> int:
        with self._lock:
            return self._last_scored_at


def _plausible(p: Prediction) -> bool:
    return 0 <= p.predicted < 10 and (p.label is None or 0 <= p.label < 10) and len(p.probabilities) == 10


def _empty_report(version: int, backend: str = "") -> VersionReport:
    return VersionReport(version, 0, 0, 0, [[0] * 10 for _ in range(10)], backend)


def _count(report: VersionReport, p: Prediction) -> None:
    report.scored += 1
    if p.label is not None:
        report.labelled += 1
        report.correct += int(p.label == p.predicted)
        report.confusion[p.label][p.predicted] += 1
