"""Install and canary-check a newly published model version ahead of the swap, off the scoring loop.

A swap used to cost the loop the install (writing the weights as rows and committing) and the
canary (scoring the manifest's images in the database), 25–50 ms between two batches. Here a
thread does both on a second database session (:meth:`Backend.session`) while the loop keeps
scoring with the versions in force; the model watcher decides only once the preparation has ended,
and then its install is a no-op (that version is stored with the same weights) and the canary,
already passed, is not run again. A preparation that fails for any reason leaves nothing decided:
the watcher installs and checks that version on the loop as before, where a rejection or a database
outage is handled as it always was. So this changes when the work is done, never what is accepted.

Only versions published while the reader runs are prepared: the topic's history, read at start, is
what the watcher resumes from, and installing every version ever published would be wasted work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from streamscore.backends.base import Backend
from streamscore.consumers.canary import canary_mismatch
from streamscore.errors import ArtifactError, StreamscoreError
from streamscore.model.artifact import ModelArtifact

log = logging.getLogger(__name__)

#: (name, version, sha256) of an artifact
ArtifactKey = tuple[str, int, str]


def key_of(artifact: ModelArtifact) -> ArtifactKey:
    return artifact.name, artifact.version, artifact.sha256


class InstallAhead:
    """One worker thread and its database session, opened at the first version to prepare."""

    def __init__(self, session: Callable[[], Backend], enabled: bool = True) -> None:
        self.enabled = enabled
        self._new_session = session
        self._session: Backend | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running: dict[ArtifactKey, Future[bool]] = {}
        self._prepared: set[ArtifactKey] = set()
        #: versions the watcher found installed and checked ahead (tests, logs)
        self.taken = 0
        #: the session failed: the next start opens a new one (the loop's backend may have reconnected)
        self._stale = False

    def start(self, artifact: ModelArtifact) -> None:
        """Begin preparing ``artifact`` unless it is already prepared or being prepared."""
        key = key_of(artifact)
        if not self.enabled or key in self._running or key in self._prepared:
            return
        if self._stale and not self._running and self._session is not None:
            self._session.close()
            self._session, self._stale = None, False
        if self._session is None:
            try:  # on the caller's thread: DuckDB's second connection is made from the loop's own
                self._session = self._new_session()
            except StreamscoreError as exc:  # tried again for the next version
                log.info("model v%d is installed on the scoring loop: no second database session (%s)",
                         artifact.version, exc.message)
                return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="install-ahead")
        self._running[key] = self._executor.submit(self._prepare, artifact)

    def busy(self) -> bool:
        """Whether a preparation is still running (the watcher decides when none is)."""
        for key, future in list(self._running.items()):
            if future.done():
                del self._running[key]
                if not future.cancelled() and future.exception() is None and future.result():
                    self._prepared.add(key)
        return bool(self._running)

    def take(self, artifact: ModelArtifact) -> bool:
        """Whether ``artifact`` was installed and passed its canary ahead (asked once, by the install)."""
        key = key_of(artifact)
        if key in self._prepared:
            # this one, and any older one prepared but overtaken before it was served, are done with
            self._prepared = {k for k in self._prepared if k[0] != key[0] or k[1] > key[1]}
            self.taken += 1
            return True
        return False

    def close(self) -> None:
        """Wait for a preparation in progress (milliseconds), then close the session."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._session is not None:
            self._session.close()
            self._session = None
        self._running.clear()

    def _prepare(self, artifact: ModelArtifact) -> bool:
        session = self._session
        if session is None:
            return False
        try:
            session.connect()
            session.install_model(artifact)
            mismatch = canary_mismatch(session, artifact)
        except StreamscoreError as exc:  # the loop installs and checks it again, and reports what fails
            log.debug("preparing model v%d ahead failed (%s): the loop installs it", artifact.version, exc.message)
            self._stale = not isinstance(exc, ArtifactError)  # a refused artifact says nothing of the session
            return False
        except Exception:  # a bug here must not cost a swap: the loop's own install decides
            log.warning("preparing model v%d ahead failed unexpectedly; the loop installs it", artifact.version,
                        exc_info=True)
            self._stale = True
            return False
        return mismatch is None
