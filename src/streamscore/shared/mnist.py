"""MNIST IDX loader that verifies the canonical SHA-256 digests.

The test split ships inside the package (for the offline demo); the training split
is read from ``STREAMSCORE_MNIST_DIR``.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from streamscore.errors import DataFileError

Split = Literal["train", "test"]

#: SHA-256 of the uncompressed IDX bytes (DESIGN.md, "Data").
DIGESTS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class MnistSplit:
    """Images (n, 784) uint8, labels (n,) uint8, and the image ids used as Kafka keys."""

    split: Split
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def image_id(self, index: int) -> str:
        return f"{PREFIX[self.split]}-{index:05d}"


def _read_idx(path: Path, stem: str) -> npt.NDArray[np.uint8]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(
            f"MNIST file {path} not found; set STREAMSCORE_MNIST_DIR to the folder holding "
            f"{stem}.gz (the canonical IDX files)"
        ) from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataFileError(f"cannot read MNIST file {path}: {exc}; download it again") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGESTS[stem]:
        raise DataFileError(
            f"checksum mismatch for {path}: sha256 {digest[:16]}… is not the canonical "
            f"{DIGESTS[stem][:16]}…; the file is corrupt or not MNIST — replace it"
        )
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    return data.reshape(shape[0], -1) if dims > 1 else data


def _locate(stem: str, directory: Path | None) -> Path:
    if directory is not None:
        for name in (f"{stem}.gz", stem):
            if (directory / name).exists():
                return directory / name
        return directory / f"{stem}.gz"
    bundled = resources.files("streamscore") / "data" / f"{stem}.gz"
    return Path(str(bundled))


def load_split(split: Split, directory: Path | None = None) -> MnistSplit:
    """Load one split. With no directory the test split comes from the package itself."""
    if split == "train" and directory is None:
        raise DataFileError("the training split is not bundled; set STREAMSCORE_MNIST_DIR")
    prefix = PREFIX[split]
    images = _read_idx(_locate(f"{prefix}-images-idx3-ubyte", directory), f"{prefix}-images-idx3-ubyte")
    labels = _read_idx(_locate(f"{prefix}-labels-idx1-ubyte", directory), f"{prefix}-labels-idx1-ubyte")
    if images.shape[0] != labels.shape[0] or images.shape[1] != 784:
        raise DataFileError(f"MNIST {split} images {images.shape} do not match labels {labels.shape}")
    return MnistSplit(split, images, labels)


def load_for(split: Split, directory: Path | None) -> MnistSplit:
    """The split from ``directory`` when it has the files, else the bundled test split."""
    if directory is not None and _locate(f"{PREFIX[split]}-images-idx3-ubyte", directory).exists():
        return load_split(split, directory)
    return load_split(split, None)
