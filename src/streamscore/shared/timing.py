"""Where the time of a batch goes: seconds per named phase, summed over batches.

The scoring loop and the backends add to one :class:`PhaseTimes` each; ``streamscore bench``
prints the sums as milliseconds per batch (``Scorer.breakdown_ms``: decode, insert, score,
predictions, offsets, commit, encode, produce, flush, kafka commit). A phase costs two ``perf_counter`` calls, so the
timers stay on in production too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class PhaseTimes:
    """Seconds per phase and the number of batches they were summed over."""

    seconds: dict[str, float] = field(default_factory=dict)
    batches: int = 0

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def batch_done(self) -> None:
        self.batches += 1
