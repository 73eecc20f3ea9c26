"""Pixels for the gallery of misclassified digits, and the PNG they are served as.

Predictions carry no pixels (DESIGN.md), so the dashboard also reads the images topic. It keeps
the pixels of the newest ``recent`` images (784 bytes each: 20,000 ≈ 16 MB) and, apart from
those, the pixels of the misclassified images the gallery shows. A misclassified prediction
whose image has not been read yet is remembered as wanted, and its pixels are kept when the
image arrives; one whose image left the recent window long ago is shown without a picture.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from typing import TypeVar

from streamscore.shared.messages import IMAGE_BYTES

#: newest images whose pixels are kept, whether or not they were misclassified
RECENT_IMAGES = 20_000
#: misclassified images whose pixels are kept (the gallery shows fewer)
KEPT_IMAGES = 200
#: misclassified ids waiting for their image
WANTED_IDS = 1_000

V = TypeVar("V")


class PixelCache:
    """Thread-safe: the images reader adds, the predictions reader asks to keep, HTTP threads get."""

    def __init__(self, recent: int = RECENT_IMAGES, kept: int = KEPT_IMAGES) -> None:
        self._lock = threading.Lock()
        self._recent_limit, self._kept_limit = recent, kept
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._wanted: OrderedDict[str, None] = OrderedDict()

    def add_image(self, image_id: str, pixels: bytes) -> None:
        with self._lock:
            if image_id in self._wanted:
                del self._wanted[image_id]
                _put(self._kept, image_id, pixels, self._kept_limit)
            else:
                _put(self._recent, image_id, pixels, self._recent_limit)

    def keep(self, image_id: str) -> None:
        """Keep this image's pixels beyond the recent window (now, or when it arrives)."""
        with self._lock:
            if image_id in self._kept:
                return
            pixels = self._recent.get(image_id)
            if pixels is not None:
                _put(self._kept, image_id, pixels, self._kept_limit)
            else:
                _put(self._wanted, image_id, None, WANTED_IDS)

    def get(self, image_id: str) -> bytes | None:
        with self._lock:
            return self._kept.get(image_id) or self._recent.get(image_id)

    def has(self, image_id: str) -> bool:
        with self._lock:
            return image_id in self._kept or image_id in self._recent


def _put(cache: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def digit_png(pixels: bytes, invert: bool = True) -> bytes:
    """A 28×28 8-bit grayscale PNG of an MNIST image (inverted: a dark digit on white, like ink on paper)."""
    if len(pixels) != IMAGE_BYTES:
        raise ValueError(f"an image is {IMAGE_BYTES} bytes, got {len(pixels)}")
    if invert:
        pixels = bytes(255 - b for b in pixels)
    rows = b"".join(b"\x00" + pixels[row * 28:(row + 1) * 28] for row in range(28))  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)  # width, height, depth 8, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
