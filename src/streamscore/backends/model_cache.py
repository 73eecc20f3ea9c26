"""The in-process cache of model weights per version, bounded so that hot swaps do not grow memory.

Every swap brings a new version; a consumer running for months sees thousands. Whatever a
backend keeps per version (DuckDB's numpy weights for the UDF, Kinetica's UDF parameters) lives
in a :class:`VersionCache`: at most :data:`MAX_CACHED_VERSIONS` versions, the least recently
used one dropped first. The same bound is written into the database-side caches, which cannot
import this module: PostgreSQL's ``CACHED_VERSIONS`` in ``sql/postgres/score_batch.sql`` (the
session's ``GD``) and Oracle's ``c_max_cached`` in ``sql/oracle/mnist_scorer.sql`` (package
state); ``tests/unit/test_model_cache.py`` checks that they agree.

Why 4 and least recently used: the versions in force are the champion (used by every batch),
a shadow or the members of an ensemble, and the version just installed (its canary is scored
before it serves). An entry that falls out is read again from the database on its next use,
so a bound that is too small costs time, never a wrong answer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

#: versions whose weights a backend keeps in memory (per process, and per database session)
MAX_CACHED_VERSIONS = 4

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class VersionCache(Generic[K, V]):
    """A least-recently-used map of at most ``limit`` entries (model versions → what scoring needs)."""

    def __init__(self, limit: int = MAX_CACHED_VERSIONS) -> None:
        if limit < 1:
            raise ValueError(f"a version cache holds at least one version, not {limit}")
        self.limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()
        #: how many times an entry was loaded (tests and bench: a swap loads once, a hit never)
        self.loads = 0

    def get(self, key: K, load: Callable[[K], V]) -> V:
        """The entry for ``key``, loaded with ``load(key)`` when absent; evicts beyond the limit."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = load(key)  # may raise: nothing is evicted for a version that does not load
        self.loads += 1
        self._entries[key] = value
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return value

    def keys(self) -> list[K]:
        """The cached keys, least recently used first."""
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
