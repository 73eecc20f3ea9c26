"""Between batches: when to try again to install a model whose install a database outage interrupted.

The candidate stays pending in the model watcher; the current version keeps scoring
batches meanwhile. Each failure waits the next capped, jittered backoff delay; there is no
limit on attempts: a newer version is never given up for an outage. No reconnect here: the
backends drop a broken connection and open a new one on their next call (PostgreSQL, Oracle),
and closing DuckDB's connection between batches would leave the next batch without one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streamscore.consumers.metrics import ScorerMetrics
from streamscore.consumers.outage import Backoff
from streamscore.errors import BackendUnavailable
from streamscore.logs import event

log = logging.getLogger(__name__)


class InstallRetry:
    def __init__(self, backoff: Backoff, metrics: ScorerMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff
        self.metrics = metrics
        self.clock = clock
        self._retry_at = 0.0

    def due(self) -> bool:
        return self.clock() >= self._retry_at

    def failed(self, exc: BackendUnavailable, version: int | None, serving: int | None) -> None:
        delay = max(self.backoff.next(), exc.retry_after)
        self._retry_at = self.clock() + delay
        self.metrics.model_install_retries.inc()
        log.warning("installing model v%s postponed, database unavailable: %s; v%s keeps serving, retry %d in %.1fs",
                    version if version is not None else "?", exc.message, serving if serving is not None else "-",
                    self.backoff.attempts, delay,
                    extra=event("model-install-postponed", version=version, attempt=self.backoff.attempts,
                                delay_s=round(delay, 3)))

    def succeeded(self) -> None:
        self.backoff.reset()
        self._retry_at = 0.0
