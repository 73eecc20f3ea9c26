"""A token bucket that paces a loop to a target rate (events per second)."""

from __future__ import annotations

import time

#: shortest sleep of a paced loop: waking once per event at thousands of events/s costs more CPU than
#: the events (`produce --rate 8000` spent 3.1 s of CPU on 48,000 images with a sleep per image, 1.6 s
#: with this floor: docs/decisions.md, "BLAS threads and paced producers"); 2 ms of tokens go in one go
MIN_SLEEP_S = 0.002


class TokenBucket:
    """Allows ``rate`` events per second on average, in bursts of at most ``burst`` (never fewer than
    one sleep's worth, ``rate × MIN_SLEEP_S``: what accrues during a sleep can be spent)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate * MIN_SLEEP_S, burst if burst is not None else rate / 20)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self, count: float = 1.0) -> None:
        """Block until ``count`` tokens are available, then spend them."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= count:
                self.tokens -= count
                return
            time.sleep(max(MIN_SLEEP_S, (count - self.tokens) / self.rate))
