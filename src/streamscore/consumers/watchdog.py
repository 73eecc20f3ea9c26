"""Per-partition progress watchdog: a partition with lag whose offset does not move is stalled.

The scorer reports, for every partition it owns, the next offset it has committed
and the lag behind the high watermark (:meth:`ProgressWatchdog.observe`). A
partition is *stalled* when it has lag and its offset has not moved for
``stall_timeout_s``. The health check (:meth:`ProgressWatchdog.health`, served on
``/healthz`` next to the metrics) fails naming the stalled partitions; the time is
measured when the check runs, so a loop that hangs inside a database call is
caught too. A partition without lag is idle, not stalled.

On the embedded broker the high watermark can be too low (see DESIGN.md), so the
lag it gives is approximate: the watchdog may miss a stall there, never invent one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamscore.logs import event

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]


@dataclass
class _Progress:
    offset: int
    lag: int
    moved_at: float
    reported: bool = False


@dataclass(frozen=True)
class Stall:
    """A partition with lag whose offset has not moved for ``seconds``."""

    topic: str
    partition: int
    offset: int
    lag: int
    seconds: float

    def __str__(self) -> str:
        return (f"{self.topic}[{self.partition}] stalled at offset {self.offset} with lag {self.lag} "
                f"for {self.seconds:.0f}s")


class ProgressWatchdog:
    """Thread-safe: the scorer loop observes, the metrics server asks for health."""

    def __init__(self, stall_timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_timeout_s = stall_timeout_s
        self.clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[PartitionKey, _Progress] = {}

    def observe(self, key: PartitionKey, offset: int, lag: int) -> None:
        """Record the partition's committed offset and lag (a moved offset or no lag is progress)."""
        now = self.clock()
        with self._lock:
            seen = self._partitions.get(key)
            if seen is None or seen.offset != offset or lag <= 0:
                if seen is not None and seen.reported:
                    log.info("partition %s[%d] moves again (offset %d, lag %d)", key[0], key[1], offset, lag,
                             extra=event("moving", topic=key[0], partition=key[1], offset=offset, lag=lag))
                self._partitions[key] = _Progress(offset, lag, now)
            else:
                seen.lag = lag

    def forget(self, keys: set[PartitionKey]) -> None:
        """Stop watching partitions this consumer no longer owns."""
        with self._lock:
            for key in keys:
                self._partitions.pop(key, None)

    def stalled(self) -> list[Stall]:
        now = self.clock()
        with self._lock:
            return [
                Stall(topic, partition, p.offset, p.lag, now - p.moved_at)
                for (topic, partition), p in sorted(self._partitions.items())
                if p.lag > 0 and now - p.moved_at >= self.stall_timeout_s
            ]

    def check(self) -> list[Stall]:
        """The stalled partitions; each newly stalled one is logged once (a warning)."""
        stalls = self.stalled()
        with self._lock:
            for stall in stalls:
                progress = self._partitions.get((stall.topic, stall.partition))
                if progress is not None and not progress.reported:
                    progress.reported = True
                    log.warning("watchdog: %s (stall timeout %.0fs)", stall, self.stall_timeout_s,
                                extra=event("stalled", topic=stall.topic, partition=stall.partition,
                                            offset=stall.offset, lag=stall.lag))
        return stalls

    def health(self) -> tuple[bool, list[str]]:
        """(healthy, problems): unhealthy while any owned partition is stalled."""
        problems = [str(stall) for stall in self.stalled()]
        return not problems, problems
