"""A token bucket that paces a loop to a target rate (events per second)."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows ``rate`` events per second on average, in bursts of at most ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 20)
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
            time.sleep((count - self.tokens) / self.rate)
