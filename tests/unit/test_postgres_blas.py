"""Which BLAS the server's numpy runs on, from the libraries mapped into the server process."""

from __future__ import annotations

import json

import pytest

from streamscore.backends.postgres.blas import NOTICE_PREFIX, BlasReport, blas_kind, parse_notice
from streamscore.backends.postgres.statements import statement

DEBIAN = "/usr/lib/x86_64-linux-gnu"


@pytest.mark.parametrize(
    ("libraries", "build", "kind"),
    [
        ([f"{DEBIAN}/openblas-pthread/libblas.so.3", f"{DEBIAN}/openblas-pthread/libopenblasp-r0.3.21.so"],
         "blas,blas", "openblas"),
        ([f"{DEBIAN}/blas/libblas.so.3", f"{DEBIAN}/lapack/liblapack.so.3"], "blas,blas", "reference"),
        (["/venv/lib/python3.11/site-packages/numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so"],
         "scipy-openblas", "openblas"),
        (["/opt/intel/oneapi/mkl/lib/libmkl_rt.so.2"], "mkl-sdl", "mkl"),
        ([], "accelerate", "accelerate"),  # no /proc (macOS): numpy's build name
        ([], "", "unknown"),
    ],
)
def test_blas_kind(libraries: list[str], build: str, kind: str) -> None:
    assert blas_kind(libraries, build) == kind


def test_the_notice_round_trips_and_other_notices_are_ignored() -> None:
    payload = {"numpy": "1.24.2", "libraries": [f"{DEBIAN}/blas/libblas.so.3"], "build": "blas"}
    report = parse_notice(NOTICE_PREFIX + json.dumps(payload))
    assert report == BlasReport("1.24.2", (f"{DEBIAN}/blas/libblas.so.3",), "blas")
    assert report is not None and report.kind == "reference"
    assert parse_notice("relation \"images\" already exists, skipping") is None


def test_the_do_block_sends_the_notice_the_parser_reads() -> None:
    block = statement("report_blas")
    assert block.startswith("DO $$") and block.rstrip().endswith("LANGUAGE plpython3u")
    assert f'plpy.notice("{NOTICE_PREFIX}"' in block
