"""Settings of the gpudb client that gpudb itself gets wrong."""

from __future__ import annotations

import math


def request_timeout_s(timeout_ms: int) -> int:
    """The gpudb ``Options.timeout`` for a timeout in ms: whole seconds, at least 1 (0 stays 0, no timeout).

    gpudb documents the option in milliseconds but hands it to ``requests`` as its ``timeout``,
    which is seconds (and int()s it): 60000 would wait 16.7 hours, 500 would become 0 = forever.
    """
    return 0 if timeout_ms == 0 else max(1, math.ceil(timeout_ms / 1000))
