"""The malformed and hostile images-topic messages every drill sends, with the DLQ reason each must get."""

from __future__ import annotations

HOSTILE_KEY = "t10k-'; DROP TABLE images; --"

#: (key, value, headers, DLQ reason or None when the message is valid and must be scored)
MALFORMED: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]], str | None]] = [
    (b"bad-783", bytes(783), [], "bad-length"),
    (b"bad-785", bytes(785), [], "bad-length"),
    (b"bad-empty", b"", [], "bad-length"),
    (b"bad-tombstone", None, [], "tombstone"),
    (None, bytes(784), [], "missing-key"),
    (b"bad-label", bytes(784), [("label", b"ten")], "bad-label"),
    (b"bad-produced-at", bytes(784), [("produced-at", b"yesterday")], "bad-header"),
    (b"bad-content-type", bytes(784), [("content-type", b"image/png")], "bad-content-type"),
    (b"\xff\xfe-not-utf8", bytes(784), [], "bad-key"),
    (b"x" * 129, bytes(784), [], "bad-key"),
    (b"bad-\x00-control", bytes(784), [], "bad-key"),
    (b"bad-'quote\"; DELETE FROM predictions; --", bytes(785), [], "bad-length"),
    (b"bad-1mb", bytes(900_000), [], "bad-length"),
    # well-formed, however hostile the key looks: stored and scored under exactly that id
    (HOSTILE_KEY.encode(), bytes(784), [("label", b"0")], None),
    (b"t10k-no-headers", bytes(255 for _ in range(784)), [], None),
]

MALFORMED_GOOD_IDS = {key.decode() for key, _, _, reason in MALFORMED if reason is None and key is not None}
