"""Where the time of a batch goes: seconds per named phase, summed over batches.

The scoring loop and the backends add to one :class:`PhaseTimes` each; ``streamscore bench``
prints the sum as milliseconds per batch (decode, insert, score, predictions, offsets, commit,
encode, produce, flush, kafka commit). A phase costs two ``perf_counter`` calls, so the
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

    def reset(self) -> None:
        self.seconds.clear()
        self.batches = 0

    def per_batch_ms(self) -> dict[str, float]:
        """Milliseconds per batch for every phase, in the order the phases were first seen."""
        if not self.batches:
            return {}
        return {name: 1000 * total / self.batches for name, total in self.seconds.items()}
