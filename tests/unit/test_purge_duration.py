"""`--older-than` durations of `streamscore db purge`."""

from __future__ import annotations

import pytest

from streamscore.errors import ConfigError
from streamscore.ops.purge import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("7d", 7 * 86_400), ("12h", 12 * 3_600), ("30m", 1_800), ("90s", 90), ("1.5h", 5_400), (" 2D ", 172_800),
])
def test_durations_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["7", "d", "0d", "0.0h", "-1h", "1w", "1h30m", ""])
def test_bad_durations_are_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--older-than .*(e\.g\. 7d, 12h or 30m)"):
        parse_duration(text)
