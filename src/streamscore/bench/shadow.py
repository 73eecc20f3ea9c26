"""`streamscore bench`: what one shadow version costs (issue 12 part 5: target ≥ 0.6×).

``shadow_overhead`` = served images/s with a champion and one shadow ÷ served images/s with the
champion alone, both over the same pre-produced images on fresh topics and databases. It needs
model roles (issue 12 part 1: ``publish-model --role``), found at run time: when this build
has no role publisher the figure is null and ``shadow.reason`` says why, so the bench runs
before and after roles are merged. Only served batches are counted (a batch's shadow results,
which the loop also hands to ``on_batch``, are not images served).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

from streamscore.backends import open_configured_backend
from streamscore.backends.base import ScoredBatch
from streamscore.consumers.scorer import Scorer
from streamscore.models import bundled_model
from streamscore.producers.images import produce_images
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics
from streamscore.shared.mnist import MnistSplit

#: where the model-roles publisher lives once roles are merged, and its name
ROLES_MODULE, ROLES_FUNCTION = "streamscore.producers.lifecycle", "publish_with_role"
#: publish_with_role(settings, artifact, role) as the roles branch defines it
RolePublisher = Callable[[Settings, Any, str], object]
#: the longest one measurement may run
RUN_LIMIT_S = 300.0


def role_publisher() -> tuple[RolePublisher | None, str]:
    """The function that publishes a version with a role, or None and why there is none."""
    try:
        module = importlib.import_module(ROLES_MODULE)
    except ModuleNotFoundError:
        return None, f"model roles are not in this build ({ROLES_MODULE} is missing): no shadow to measure"
    publish = getattr(module, ROLES_FUNCTION, None)
    if not callable(publish):
        return None, f"{ROLES_MODULE} has no {ROLES_FUNCTION}(settings, artifact, role): no shadow to measure"
    return publish, ""


def served_rate(settings: Settings, split: MnistSplit, images: int) -> float | None:
    """Served images/s of a Scorer over ``images`` pre-produced images (clock from the first batch)."""
    stop = threading.Event()
    stamps: list[tuple[float, int]] = []

    def on_batch(batch: ScoredBatch) -> None:
        if getattr(batch, "served", True):
            stamps.append((time.monotonic(), len(batch.image_ids)))
            if sum(n for _, n in stamps) >= images:
                stop.set()

    scorer = Scorer(settings, open_configured_backend(settings), stop=stop, on_batch=on_batch)
    produce_images(settings, split, limit=images)
    thread = threading.Thread(target=scorer.run, daemon=True, name="shadow-scorer")
    thread.start()
    thread.join(RUN_LIMIT_S)
    stop.set()
    thread.join(30)
    if len(stamps) < 2:
        return None
    return (sum(n for _, n in stamps) - stamps[0][1]) / (stamps[-1][0] - stamps[0][0])


def shadow_overhead(fresh: Callable[[str], Settings], split: MnistSplit, images: int) -> dict[str, Any]:
    """Served images/s with one shadow ÷ without (see the module doc); ``fresh(tag)`` gives a run's settings."""
    publish, reason = role_publisher()
    if publish is None:
        return {"shadow_overhead": None, "reason": reason}
    champion, shadow = bundled_model(1), bundled_model(2)
    rates: dict[str, float | None] = {}
    for tag, roles in (("champion", [(champion, "champion")]),
                       ("shadow", [(champion, "champion"), (shadow, "shadow")])):
        run = fresh(f"shadow-{tag}")
        ensure_topics(run)
        for artifact, role in roles:
            publish(run, artifact, role)
        rates[tag] = served_rate(run, split, images)
    alone, shadowed = rates["champion"], rates["shadow"]
    ratio = shadowed / alone if alone and shadowed else None
    return {"shadow_overhead": ratio, "champion_images_per_s": alone, "with_shadow_images_per_s": shadowed,
            **({} if ratio is not None else {"reason": "a run scored no images"})}
