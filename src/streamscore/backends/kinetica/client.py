"""Settings of the gpudb client that gpudb itself gets wrong, and a reachability probe."""

from __future__ import annotations

import math
import socket
from typing import Any


def request_timeout_s(timeout_ms: int) -> int | None:
    """The gpudb ``Options.timeout`` for a timeout in ms: whole seconds, at least 1; 0 (no timeout) is None.

    gpudb documents the option in milliseconds but hands it to ``requests`` as its ``timeout``,
    which is seconds (and int()s it): 60000 would wait 16.7 hours. ``requests`` refuses a timeout
    of 0 (ValueError on every request), so "no timeout" is gpudb's None, which it passes on as is.
    """
    return None if timeout_ms == 0 else max(1, math.ceil(timeout_ms / 1000))


def unreachable_workers(db: Any, timeout: float = 2.0) -> list[str]:
    """The worker rank URLs of the connected cluster that do not accept a TCP connection.

    Multi-head ingest posts each record straight to the rank owning its shard, at the addresses
    the cluster announces; from outside a Docker network or a NAT those are often unreachable,
    and every insert would then fail like an outage that never ends.
    """
    info = db.current_cluster_info
    unreachable: list[str] = []
    for url in list(getattr(info, "worker_rank_urls", None) or []):
        try:
            socket.create_connection((url.host, int(url.port)), timeout=timeout).close()
        except (OSError, ValueError):
            unreachable.append(str(url))
    return unreachable
