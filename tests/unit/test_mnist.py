"""The IDX loader: canonical digests, clear errors for missing or corrupt files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamscore.errors import DataFileError
from streamscore.shared.mnist import load_for, load_split


def test_test_split_shape_and_ids(mnist_dir: Path) -> None:
    split = load_split("test", mnist_dir)
    assert split.images.shape == (10_000, 784)
    assert split.images.dtype == np.uint8
    assert np.bincount(split.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert split.image_id(42) == "t10k-00042"


def test_bundled_test_split_is_the_canonical_one(mnist_dir: Path) -> None:
    bundled = load_split("test")
    shared = load_split("test", mnist_dir)
    assert np.array_equal(bundled.images, shared.images)
    assert np.array_equal(bundled.labels, shared.labels)


def test_checksum_mismatch_is_a_clear_error(mnist_dir: Path, tmp_path: Path) -> None:
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    raw = bytearray(gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] ^= 0xFF
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataFileError, match="checksum mismatch"):
        load_split("test", tmp_path)


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="STREAMSCORE_MNIST_DIR"):
        load_split("test", tmp_path)


def test_truncated_gzip_is_a_clear_error(mnist_dir: Path, tmp_path: Path) -> None:
    data = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    shutil.copy(mnist_dir / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataFileError, match="cannot read"):
        load_split("test", tmp_path)


def test_training_split_needs_a_folder() -> None:
    with pytest.raises(DataFileError, match="STREAMSCORE_MNIST_DIR"):
        load_split("train")


def test_load_for_falls_back_to_bundled_test_split(tmp_path: Path) -> None:
    assert len(load_for("test", tmp_path)) == 10_000
