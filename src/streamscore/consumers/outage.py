"""Capped exponential backoff with jitter, for database outages.

The scorer waits ``start`` seconds after the first failure, doubles the wait after
each further failure up to ``cap``, and spreads every wait by ±``jitter`` so that
the consumers of a group do not hammer a recovering database in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive retries: start, 2·start, 4·start, … capped, each jittered."""

    start: float
    cap: float
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.start <= 0 or self.cap <= 0:
            raise ValueError("backoff start and cap must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction in [0, 1)")

    def base(self) -> float:
        """The un-jittered delay of the next retry."""
        return min(self.cap, self.start * 2.0 ** min(self.attempts, 62))

    def next(self) -> float:
        """The delay to wait before the next retry; advances the sequence."""
        delay = self.base() * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        self.attempts += 1
        return min(delay, self.cap * (1 + self.jitter))

    def reset(self) -> None:
        self.attempts = 0
