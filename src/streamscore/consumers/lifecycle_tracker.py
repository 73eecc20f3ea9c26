"""A consumer's view of the model lifecycle: which snapshot is in force, which artifacts wait.

The model watcher hands it what it reads on the models topic (lifecycle snapshots, verified
artifact records, plain records once a lifecycle exists); :meth:`LifecycleTracker.apply` then, between
two batches, installs every version the newest snapshot needs, stores the snapshot in the database
(so a restart resumes it and never an older one: :meth:`resume`) and hands back the new state.

A snapshot whose served versions are not available yet (artifact not read, rejected, canary
failed) is not applied: the versions in force keep serving, and the wait is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from streamscore.backends.base import Backend
from streamscore.errors import LifecycleError
from streamscore.logs import event
from streamscore.model.artifact import ModelArtifact
from streamscore.model.lifecycle import Lifecycle, LifecycleFold

log = logging.getLogger(__name__)

#: installs and canary-checks one artifact; False when it was rejected (the watcher logs why)
Installer = Callable[[ModelArtifact], bool]


@dataclass
class LifecycleTracker:
    name: str
    backend: Backend
    fold: LifecycleFold = field(init=False)
    #: the snapshot in force (None: no lifecycle yet, plain records decide as before)
    applied: Lifecycle | None = None
    #: verified artifacts not installed yet, by version
    artifacts: dict[int, ModelArtifact] = field(default_factory=dict)
    #: versions rejected at install (canary, conflict): a snapshot serving one of them waits
    rejected: set[int] = field(default_factory=set)
    #: set when a served version is neither installed nor cached (dropped earlier): the watcher
    #: reads the models topic again from the beginning, once per (revision, version)
    reread: bool = False
    _announced: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.fold = LifecycleFold(self.name)

    @property
    def active(self) -> bool:
        """True once a lifecycle snapshot was read or resumed (plain records then fold into it)."""
        return self.fold.state.revision > 0

    def resume(self) -> Lifecycle | None:
        """The snapshot this database last applied (None when it keeps none)."""
        stored = self.backend.stored_lifecycle(self.name)
        if stored is None:
            return None
        try:
            state = Lifecycle.from_json(stored[1])
        except LifecycleError as exc:
            log.warning("ignoring the stored model lifecycle of %s: %s", self.name, exc.message)
            return None
        self.fold.snapshot(state)
        self.applied = state
        return state

    def on_snapshot(self, value: bytes) -> None:
        try:
            state = Lifecycle.from_json(value)
        except LifecycleError as exc:
            log.warning("models topic: lifecycle record of %s ignored (%s): %s", self.name, exc.reason, exc.message)
            return
        if not self.fold.snapshot(state):
            log.debug("lifecycle revision %d of %s is not newer than %d: ignored", state.revision, self.name,
                      self.fold.state.revision)

    def on_artifact(self, artifact: ModelArtifact) -> None:
        self.artifacts[artifact.version] = artifact

    def on_plain(self, artifact: ModelArtifact, published_at: int) -> None:
        if self.fold.plain(artifact.version, artifact.sha256, published_at):
            self.artifacts[artifact.version] = artifact

    def pending(self) -> Lifecycle | None:
        state = self.fold.state
        newer = self.applied is None or state.revision > self.applied.revision
        return state if newer and state.serving_set() is not None else None

    def apply(self, install: Installer) -> Lifecycle | None:
        """Install what the newest snapshot needs and make it the one in force; None when nothing changed."""
        state = self.pending()
        serving = state.serving_set() if state is not None else None
        if state is None or serving is None:
            return None
        in_force = {ref.version for ref in serving.refs}
        installed = set(self.backend.installed_versions(self.name))
        for version in state.needed_versions():
            if version in installed:
                continue
            artifact = self.artifacts.get(version)
            if artifact is not None and version not in self.rejected:
                if install(artifact):
                    installed.add(version)
                    continue
                self.rejected.add(version)
            if version in in_force:
                if artifact is None and version not in self.rejected and self._announced != (state.revision, version):
                    self.reread = True  # its artifact was dropped from memory earlier: read the topic again
                self._announce_wait(state, version)
                return None
        self.backend.store_lifecycle(self.name, state.revision, state.to_json().decode())
        previous, self.applied = self.applied, state
        # keep in memory only artifacts of versions newer than this state (their snapshot is still to
        # come); the rest are installed or not needed (a later promotion of one reads the topic again)
        self.artifacts = {v: a for v, a in self.artifacts.items() if v > state.newest}
        log.info("model lifecycle of %s: %s (revision %d) — serving %s", self.name, state.command or "resumed",
                 state.revision, serving, extra=event("lifecycle-applied", model=self.name, revision=state.revision,
                                                       command=state.command, serving=str(serving),
                                                       previous=previous.revision if previous else None))
        return state

    def _announce_wait(self, state: Lifecycle, version: int) -> None:
        if self._announced == (state.revision, version):
            return
        self._announced = (state.revision, version)
        why = "was rejected" if version in self.rejected else "has not been read from the models topic yet"
        log.warning("model lifecycle of %s (%s) waits: v%d %s; the versions in force keep serving", self.name,
                    state.command, version, why,
                    extra=event("lifecycle-waiting", model=self.name, revision=state.revision, version=version))
