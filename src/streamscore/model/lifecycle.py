"""The lifecycle of one model's versions: roles, states and the champion history (issue 12).

A :class:`Lifecycle` is a full snapshot: every known version with its role and state, the
champions in the order they served, and a ``revision``. It travels as JSON on the models topic
(keyed by the model name, so compaction keeps the newest snapshot; see docs/decisions.md) and is
kept by each consumer's database. Readers apply a snapshot only when its revision is higher than
the one they serve, so replaying the topic rebuilds the same state everywhere and nothing regresses.

Roles: ``champion`` (served alone), ``ensemble`` (served together with the champion as the mean
of the members' probabilities), ``shadow`` (scored and stored, never served). States: ``serving``,
``shadowing``, ``retired`` (a former champion, the target of a rollback), ``rolled-back`` and
``withdrawn`` (never served again unless promoted).

Transitions return a new snapshot; they raise :class:`LifecycleError` with a reason code and the
fix when a command makes no sense (unknown version, nothing to roll back to, nothing left to serve).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from streamscore.backends.records import ModelRef, ServingSet
from streamscore.errors import LifecycleError
from streamscore.shared.messages import now_ms

#: the roles ``publish-model --role`` accepts
PUBLISH_ROLES = ("champion", "shadow", "ensemble")
#: what a version does now
STATES = ("serving", "shadowing", "retired", "rolled-back", "withdrawn")
#: champions a snapshot remembers (rollback targets), and how many of the latest ones consumers keep
#: installed ahead of a rollback (an older one is installed from the topic when it is rolled back to)
HISTORY = 32
ROLLBACK_DEPTH = 4


@dataclass(frozen=True)
class VersionEntry:
    version: int
    role: str
    state: str
    published_at: int = 0  # epoch ms
    key_id: str = ""  # fingerprint of the key that signed the artifact ("" unsigned)
    sha256: str = ""  # digest of the weights

    @property
    def live(self) -> bool:
        return self.state in ("serving", "shadowing")


@dataclass(frozen=True)
class Lifecycle:
    name: str
    revision: int = 0
    versions: tuple[VersionEntry, ...] = ()
    #: versions in the order they became champion; the last one is the champion
    history: tuple[int, ...] = ()
    #: the command that made this snapshot and why (shown by `models list`, logged by consumers)
    command: str = ""

    # -- queries ---------------------------------------------------------------------------
    def entry(self, version: int) -> VersionEntry | None:
        return next((e for e in self.versions if e.version == version), None)

    @property
    def champion(self) -> int | None:
        return self.history[-1] if self.history else None

    @property
    def newest(self) -> int:
        return max((e.version for e in self.versions), default=0)

    def serving_set(self) -> ServingSet | None:
        """Versions in force: champion (+ ensemble members) served, shadows alongside; None if nothing serves."""
        served = sorted({e.version for e in self.versions if e.role == "ensemble" and e.state == "serving"}
                        | ({self.champion} if self.champion is not None else set()))
        shadows = tuple(ModelRef(self.name, e.version, "shadow") for e in sorted(self.versions, key=lambda e: e.version)
                        if e.state == "shadowing")
        if not served:
            return None
        if len(served) == 1:
            return ServingSet((ModelRef(self.name, served[0], "champion"),), shadows)
        return ServingSet(tuple(ModelRef(self.name, v, "member") for v in served), shadows)

    def needed_versions(self) -> list[int]:
        """Versions a consumer keeps installed: those in force and the champions a rollback may return to."""
        serving = self.serving_set()
        live = {ref.version for ref in serving.refs} if serving is not None else set()
        recent = self.history[-ROLLBACK_DEPTH - 1:]
        return sorted(live | {v for v in recent if (e := self.entry(v)) is not None and e.state != "withdrawn"})

    # -- transitions -----------------------------------------------------------------------
    def publish(self, version: int, role: str, *, sha256: str = "", key_id: str = "",
                published_at: int | None = None) -> Lifecycle:
        if role not in PUBLISH_ROLES:
            raise LifecycleError(f"role {role!r} is not one of {', '.join(PUBLISH_ROLES)}")
        if version <= self.newest:
            raise LifecycleError(
                f"{self.name} v{version} is not newer than v{self.newest}, the newest known version: publish "
                f"it under a new version (--version {self.newest + 1})", reason="version-not-newer")
        entry = VersionEntry(version, role, "shadowing" if role == "shadow" else "serving",
                             now_ms() if published_at is None else published_at, key_id, sha256)
        changed = self._with(entry)
        if role == "champion":
            changed = changed._crown(version)
        return changed._next(f"publish v{version} as {role}")

    def promote(self, version: int) -> Lifecycle:
        entry = self._known(version)
        if self.champion == version:
            raise LifecycleError(f"{self.name} v{version} is already the champion")
        changed = self._with(dataclasses.replace(entry, role="champion", state="serving"))._crown(version)
        return changed._next(f"promote v{version}")

    def withdraw(self, version: int) -> Lifecycle:
        entry = self._known(version)
        history = tuple(v for v in self.history if v != version)
        changed = dataclasses.replace(self._with(dataclasses.replace(entry, state="withdrawn")), history=history)
        if self.champion == version:
            changed = changed._serve_champion()
        if changed.serving_set() is None:
            raise LifecycleError(f"withdrawing {self.name} v{version} would leave nothing to serve: publish or "
                                 "promote another version first")
        return changed._next(f"withdraw v{version}")

    def rollback(self, reason: str = "") -> Lifecycle:
        current = self.champion
        earlier = [v for v in self.history[:-1] if v != current]
        if current is None or not earlier:
            raise LifecycleError(f"{self.name} has no earlier champion to roll back to (champions so far: "
                                 f"{', '.join(f'v{v}' for v in self.history) or 'none'})", reason="no-rollback")
        entry = self._known(current)
        history = tuple(v for v in self.history if v != current)
        changed = dataclasses.replace(self._with(dataclasses.replace(entry, state="rolled-back")), history=history)
        return changed._serve_champion()._next(f"rollback v{current} to v{history[-1]}" +
                                               (f": {reason}" if reason else ""))

    def adopt_legacy(self, version: int, sha256: str, published_at: int = 0) -> Lifecycle:
        """A plain artifact record (publishers before lifecycles) newer than every known version: champion.

        The revision grows by one (not to the clock), so every reader of the topic folds the same state.
        """
        if version <= self.newest:
            return self
        entry = VersionEntry(version, "champion", "serving", published_at, "", sha256)
        changed = self._with(entry)._crown(version)
        return dataclasses.replace(changed, revision=self.revision + 1,
                                   command=f"publish v{version} as champion (plain record)")

    # -- helpers ---------------------------------------------------------------------------
    def _known(self, version: int) -> VersionEntry:
        entry = self.entry(version)
        if entry is None:
            known = ", ".join(f"v{e.version}" for e in self.versions) or "none"
            raise LifecycleError(f"{self.name} v{version} is not on the models topic (known: {known}); "
                                 "publish it first with `streamscore publish-model PATH`", reason="unknown-version")
        return entry

    def _with(self, entry: VersionEntry) -> Lifecycle:
        others = [e for e in self.versions if e.version != entry.version]
        return dataclasses.replace(self, versions=tuple(sorted([*others, entry], key=lambda e: e.version)))

    def _crown(self, version: int) -> Lifecycle:
        """``version`` becomes the champion; the previous one retires (a rollback can bring it back)."""
        changed = self
        previous = self.champion
        if previous is not None and previous != version and (old := self.entry(previous)) is not None:
            changed = changed._with(dataclasses.replace(old, state="retired"))
        history = (*[v for v in self.history if v != version], version)
        return dataclasses.replace(changed, history=history[-HISTORY:])

    def _serve_champion(self) -> Lifecycle:
        champion = self.champion
        if champion is None or (entry := self.entry(champion)) is None:
            return self
        return self._with(dataclasses.replace(entry, role="champion", state="serving"))

    def _next(self, command: str) -> Lifecycle:
        return dataclasses.replace(self, revision=max(self.revision + 1, now_ms()), command=command)

    # -- wire ------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        body = {"name": self.name, "revision": self.revision, "history": list(self.history),
                "command": self.command, "versions": [dataclasses.asdict(e) for e in self.versions]}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, value: bytes | str) -> Lifecycle:
        try:
            body: dict[str, Any] = json.loads(value)
            versions = tuple(VersionEntry(int(v["version"]), str(v["role"]), str(v["state"]),
                                          int(v.get("published_at", 0)), str(v.get("key_id", "")),
                                          str(v.get("sha256", ""))) for v in body["versions"])
            lifecycle = cls(str(body["name"]), int(body["revision"]), versions,
                            tuple(int(v) for v in body["history"]), str(body.get("command", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise LifecycleError(f"not a model lifecycle record: {exc}", reason="bad-lifecycle") from None
        for entry in versions:
            if entry.role not in PUBLISH_ROLES or entry.state not in STATES:
                raise LifecycleError(f"lifecycle of {lifecycle.name}: v{entry.version} has role {entry.role!r} "
                                     f"and state {entry.state!r}", reason="bad-lifecycle")
        return lifecycle


class LifecycleFold:
    """Topic records in order → the state every reader agrees on (newest snapshot, plain records folded in)."""

    def __init__(self, name: str) -> None:
        self.state = Lifecycle(name)

    def snapshot(self, state: Lifecycle) -> bool:
        """Take ``state`` if it is newer than the one held; True when taken."""
        if state.name != self.state.name or state.revision <= self.state.revision:
            return False
        self.state = state
        return True

    def plain(self, version: int, sha256: str, published_at: int = 0) -> bool:
        before = self.state
        self.state = self.state.adopt_legacy(version, sha256, published_at)
        return self.state is not before
