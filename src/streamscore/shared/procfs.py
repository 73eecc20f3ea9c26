"""Resident memory of a process, read from Linux /proc (bench figures; None elsewhere)."""

from __future__ import annotations

import os


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of a process in MB (Linux /proc); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
