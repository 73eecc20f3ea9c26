"""The consumer's process settings: BLAS threads, and the producer's pacing."""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from streamscore.consumers.blas_threads import limit_blas_threads
from streamscore.producers import rate
from streamscore.producers.rate import MIN_SLEEP_S, TokenBucket
from streamscore.shared.config import Settings


def blas_threads() -> set[int]:
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_the_consumer_limits_blas_to_the_configured_threads() -> None:
    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded
    assert Settings().blas_threads == 1
    with threadpool_limits(limits=None):  # restores the process's limits after the test
        limit_blas_threads(1)
        assert blas_threads() == {1}


def test_zero_leaves_the_library_default() -> None:
    before = blas_threads()
    with threadpool_limits(limits=None):
        limit_blas_threads(0)
        assert blas_threads() == before


def test_a_paced_loop_sleeps_at_most_once_per_min_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 20,000 events/s one sleep per event would be 2,000 sleeps for 2,000 events; the bucket
    wakes about once per MIN_SLEEP_S instead and still spends every token."""
    sleeps: list[float] = []
    real_sleep = time.sleep

    def counted(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(rate.time, "sleep", counted)
    bucket = TokenBucket(20_000, burst=1)  # a burst below one sleep's worth is raised to it
    started = time.monotonic()
    for _ in range(2_000):
        bucket.take()
    elapsed = time.monotonic() - started
    assert all(seconds >= MIN_SLEEP_S for seconds in sleeps)
    assert len(sleeps) <= elapsed / MIN_SLEEP_S + 1
    assert len(sleeps) < 2_000 / 10
