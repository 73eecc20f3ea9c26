"""One catalogue of malformed and hostile images-topic messages, with the DLQ reason each must get.

The demo mixes a few of them into its stream to show the dead-letter topic at work; the drills
and end-to-end tests send them all and check every reason. Keeping one list means the demo shows
exactly what the tests prove.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamscore.shared.messages import Headers

#: a well-formed image whose id looks like SQL injection: stored and scored under exactly that id
HOSTILE_KEY = "t10k-'; DROP TABLE images; --"


@dataclass(frozen=True)
class CatalogueMessage:
    key: bytes | None
    value: bytes | None
    headers: Headers
    #: the DLQ ``error.reason`` it must get, or None when it is valid and must be scored
    reason: str | None


CATALOGUE: tuple[CatalogueMessage, ...] = (
    CatalogueMessage(b"bad-783", bytes(783), [], "bad-length"),
    CatalogueMessage(b"bad-785", bytes(785), [], "bad-length"),
    CatalogueMessage(b"bad-empty", b"", [], "bad-length"),
    CatalogueMessage(b"bad-tombstone", None, [], "tombstone"),
    CatalogueMessage(None, bytes(784), [], "missing-key"),
    CatalogueMessage(b"bad-label", bytes(784), [("label", b"ten")], "bad-label"),
    CatalogueMessage(b"bad-produced-at", bytes(784), [("produced-at", b"yesterday")], "bad-header"),
    CatalogueMessage(b"bad-content-type", bytes(784), [("content-type", b"image/png")], "bad-content-type"),
    CatalogueMessage(b"\xff\xfe-not-utf8", bytes(784), [], "bad-key"),
    CatalogueMessage(b"x" * 129, bytes(784), [], "bad-key"),
    CatalogueMessage(b"bad-\x00-control", bytes(784), [], "bad-key"),
    CatalogueMessage(b"bad-'quote\"; DELETE FROM predictions; --", bytes(785), [], "bad-length"),
    CatalogueMessage(b"bad-1mb", bytes(900_000), [], "bad-length"),
    # well-formed, however hostile they look: stored and scored
    CatalogueMessage(HOSTILE_KEY.encode(), bytes(784), [("label", b"0")], None),
    CatalogueMessage(b"t10k-no-headers", bytes(255 for _ in range(784)), [], None),
)

#: the messages that must be dead-lettered
MALFORMED: tuple[CatalogueMessage, ...] = tuple(m for m in CATALOGUE if m.reason is not None)

#: what the demo mixes into its stream: one of each common mistake
DEMO_MALFORMED: tuple[CatalogueMessage, ...] = tuple(
    m for m in MALFORMED if m.key in (b"bad-783", b"bad-tombstone", b"bad-label", b"bad-content-type",
                                       b"\xff\xfe-not-utf8")
)
