"""The catalogue of malformed and hostile messages (streamscore.shared.malformed) as tuples for the drills."""

from __future__ import annotations

from streamscore.shared.malformed import CATALOGUE, HOSTILE_KEY

__all__ = ["HOSTILE_KEY", "MALFORMED", "MALFORMED_GOOD_IDS"]

#: (key, value, headers, DLQ reason or None when the message is valid and must be scored)
MALFORMED: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]], str | None]] = [
    (m.key, m.value, list(m.headers), m.reason) for m in CATALOGUE
]

MALFORMED_GOOD_IDS = {key.decode() for key, _, _, reason in MALFORMED if reason is None and key is not None}
