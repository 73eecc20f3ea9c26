"""Retention: ``streamscore db purge --older-than DURATION`` (see docs/operations.md)."""

from __future__ import annotations

import re
from collections.abc import Callable

from streamscore.backends import Backend, PurgeReport
from streamscore.errors import ConfigError

#: unit letter → seconds (``7d``, ``12h``, ``30m``, ``90s``)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``7d``, ``12h``, ``30m`` or ``90s``; positive, one unit."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ConfigError(f"--older-than {text!r} is not a duration: write a positive number and a unit "
                          "(s, m, h or d), e.g. 7d, 12h or 30m")
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"--older-than {text!r} must be longer than 0: e.g. 7d, 12h or 30m")
    return seconds


def purge_database(database: Backend, older_than: str, confirm: Callable[[str], bool]) -> PurgeReport | None:
    """Purge ``database`` after ``confirm(question)`` says yes; None when it said no.

    The duration and the capability are checked before anything is opened or asked.
    """
    seconds = parse_duration(older_than)
    database.require("purge")
    question = (f"Delete the images stored more than {older_than} ago and their predictions from "
                f"{database.url.masked()}? (offsets and models stay)")
    if not confirm(question):
        return None
    with database:
        return database.purge(seconds)
