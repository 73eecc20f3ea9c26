"""Automatic rollback (`evaluate --follow --auto-rollback`): watch served accuracy per version.

Every new served prediction with a label (role champion or ensemble; shadows never count) goes
into a sliding window of its version's last ``window`` outcomes. The version in force is the one
whose served predictions are the most recent (by ``scored_at``); the previous champion is the
other version served most recently before it. When both windows are full and the current one's
accuracy is more than ``margin`` below the previous one's, a rollback is published to the models
topic (once per version) and the reason is logged; consumers switch back between two batches.

The rollback is only published while the lifecycle still names that version as champion, so a
rollback already done by hand, or a newer promotion, is never undone.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from streamscore.logs import event
from streamscore.shared.messages import Prediction

log = logging.getLogger(__name__)

#: publishes a rollback of (model name, bad version) with a reason; True when it was published
RollbackAction = Callable[[str, int, str], bool]


@dataclass
class VersionWindow:
    outcomes: deque[bool]
    last_scored_at: int = 0

    @property
    def accuracy(self) -> float:
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0


@dataclass
class AutoRollback:
    window: int
    margin: float
    rollback: RollbackAction
    #: per (model name, version)
    windows: dict[tuple[str, int], VersionWindow] = field(default_factory=dict)
    #: versions already judged (rolled back or left alone because the lifecycle moved on)
    judged: set[tuple[str, int]] = field(default_factory=set)
    fired: list[str] = field(default_factory=list)

    def observe(self, prediction: Prediction) -> None:
        if prediction.role not in ("champion", "ensemble") or prediction.label is None:
            return
        key = (prediction.model_name, prediction.model_version)
        slot = self.windows.setdefault(key, VersionWindow(deque(maxlen=self.window)))
        slot.outcomes.append(prediction.predicted == prediction.label)
        slot.last_scored_at = max(slot.last_scored_at, prediction.scored_at)
        self._judge(prediction.model_name)

    def _judge(self, name: str) -> None:
        ranked = sorted(((w.last_scored_at, version) for (n, version), w in self.windows.items() if n == name),
                        reverse=True)
        if len(ranked) < 2:
            return
        current, previous = ranked[0][1], ranked[1][1]
        if (name, current) in self.judged:
            return
        now, before = self.windows[(name, current)], self.windows[(name, previous)]
        if len(now.outcomes) < self.window or len(before.outcomes) < self.window:
            return
        drop = before.accuracy - now.accuracy
        if drop <= self.margin:
            return
        self.judged.add((name, current))
        reason = (f"auto-rollback: {name} v{current} accuracy {now.accuracy:.4f} over its last {self.window} labelled "
                  f"predictions is {drop:.4f} below v{previous}'s {before.accuracy:.4f} (margin {self.margin})")
        if self.rollback(name, current, reason):
            self.fired.append(reason)
            log.warning("%s: rollback published", reason,
                        extra=event("auto-rollback", model=name, version=current, previous=previous,
                                    accuracy=now.accuracy, previous_accuracy=before.accuracy))
