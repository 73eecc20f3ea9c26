"""The test-only crash hook of the scoring loop, read from the environment at the process entry point.

``STREAMSCORE_FAULT_POINT=after-db-commit`` makes ``streamscore consume`` exit at once
(like SIGKILL) when a batch reaches that point of :meth:`.checkpoint.Checkpoint.commit`.
The loop itself never reads the environment: the CLI passes the hook in.
"""

from __future__ import annotations

import logging
import os

from streamscore.consumers.checkpoint import FaultHook
from streamscore.logs import event

log = logging.getLogger(__name__)

FAULT_ENV = "STREAMSCORE_FAULT_POINT"


def crash_at(point: str) -> FaultHook:
    """A hook that ends the process with code 137 when the loop reaches ``point``."""

    def hook(reached: str) -> None:
        if reached == point:
            log.error("fault point %s reached: exiting (test only)", reached, extra=event("fault-point", point=reached))
            logging.shutdown()
            os._exit(137)

    return hook


def fault_hook_from_env() -> FaultHook | None:
    """The crash hook named by STREAMSCORE_FAULT_POINT, or None (always, outside tests)."""
    point = os.environ.get(FAULT_ENV, "")
    return crash_at(point) if point else None
