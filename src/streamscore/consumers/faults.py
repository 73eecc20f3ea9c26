"""The test-only fault hooks of the scoring loop, read from the environment at the process entry point.

``STREAMSCORE_FAULT_POINT=after-db-commit`` makes ``streamscore consume`` exit at once
(like SIGKILL) when a batch reaches that point of :meth:`.checkpoint.Checkpoint.commit`.
With ``STREAMSCORE_FAULT_HOLD_UNTIL=PATH`` as well, the first batch to reach the point is
held there instead (event ``fault-hold``) until the file PATH exists: a drill can then cut
Kafka while the consumer has a batch in hand, whatever the speed of the machine.
The loop itself never reads the environment: the CLI passes the hook in.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from streamscore.consumers.checkpoint import FaultHook
from streamscore.logs import event

log = logging.getLogger(__name__)

FAULT_ENV = "STREAMSCORE_FAULT_POINT"
HOLD_ENV = "STREAMSCORE_FAULT_HOLD_UNTIL"


def crash_at(point: str) -> FaultHook:
    """A hook that ends the process with code 137 when the loop reaches ``point``."""

    def hook(reached: str) -> None:
        if reached == point:
            log.error("fault point %s reached: exiting (test only)", reached, extra=event("fault-point", point=reached))
            logging.shutdown()
            os._exit(137)

    return hook


def hold_at(point: str, release: Path) -> FaultHook:
    """A hook that holds the first batch reaching ``point`` until the file ``release`` exists."""
    held = False

    def hook(reached: str) -> None:
        nonlocal held
        if reached != point or held:
            return
        held = True
        log.warning("fault point %s reached: holding the batch until %s exists (test only)", reached, release,
                    extra=event("fault-hold", point=reached))
        while not release.exists():
            time.sleep(0.05)

    return hook


def fault_hook_from_env() -> FaultHook | None:
    """The hook named by STREAMSCORE_FAULT_POINT (and STREAMSCORE_FAULT_HOLD_UNTIL), or None (always, outside tests)."""
    point = os.environ.get(FAULT_ENV, "")
    if not point:
        return None
    release = os.environ.get(HOLD_ENV, "")
    return hold_at(point, Path(release)) if release else crash_at(point)
