"""Garbage-collector settings for the scoring loop (measured: docs/decisions.md, "Real time").

A batch allocates a few objects per message (librdkafka's messages, decoded images, records),
almost none of them in reference cycles. With the default gen-0 threshold (700 allocations) a
batch of 2,000 messages triggers several collections, and the older generations are then scanned
together with everything the imports created (numpy, DuckDB, pyarrow, confluent-kafka): on this
machine that was half of a 2,000-image batch's decode time. Freezing what exists once the loop is
ready and collecting gen 0 every 50,000 allocations leaves cyclic garbage collected, just less often.
"""

from __future__ import annotations

import gc

#: allocations between two generation-0 collections (CPython's default: 700)
GEN0_THRESHOLD = 50_000

_tuned = False


def tune_gc_for_streaming() -> None:
    """Once per process: move the objects alive now out of the collector's scans, collect gen 0 less often."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
