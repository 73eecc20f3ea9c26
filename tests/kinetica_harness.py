"""Run the Kinetica UDFs locally, without Kinetica, through the real control-file format.

:func:`run_udf` writes input tables and a control file the way Kinetica does
(``shared/reference/kinetica.md`` section 2), points ``KINETICA_PCF`` at it, calls
the UDF's ``main`` and reads its output tables and results back.

``kinetica_proc`` comes from ``STREAMSCORE_KINETICA_PROC_DIR`` when that names a
folder holding the real module (MIT, not on PyPI), else from our stand-in in
``tests/fakes``.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).resolve().parent / "fakes"

STRING, BYTES, DOUBLE, FLOAT, INT, LONG, TIMESTAMP, INT16 = 0x1, 0x2, 0x10, 0x20, 0x40, 0x80, 0x10000, 0x40000
CHAR16, CHAR64, CHAR128 = 0x4000, 0x400000, 0x800000
_FIXED = {DOUBLE: "=d", FLOAT: "=f", INT: "=i", LONG: "=q", TIMESTAMP: "=q", INT16: "=h"}
_CHARS = {CHAR16: 16, CHAR64: 64, CHAR128: 128}
_VARIABLE = {STRING, BYTES}

#: the inference UDF's input (score_inbox, restricted columns) and output (prediction_stage)
INFER_INPUT = [("image_id", CHAR128), ("pixels", BYTES), ("batch_id", CHAR64)]
INFER_OUTPUT = [
    ("image_id", CHAR128), ("batch_id", CHAR64), ("model_name", CHAR64), ("model_version", LONG),
    ("role", CHAR16), ("model_id", CHAR128), ("predicted", INT),
    *((f"p{k}", FLOAT) for k in range(10)), ("scored_at", TIMESTAMP),
]


@dataclass
class Table:
    name: str
    columns: list[tuple[str, int]]
    rows: dict[str, list[Any]] = field(default_factory=dict)


def _u64(value: int) -> bytes:
    return struct.pack("=Q", value)


def _str(text: str) -> bytes:
    raw = text.encode()
    return _u64(len(raw)) + raw


def _dict(mapping: dict[str, str]) -> bytes:
    return _u64(len(mapping)) + b"".join(_str(k) + _str(v) for k, v in mapping.items())


def _encode_column(type_code: int, values: Sequence[Any]) -> tuple[bytes, bytes]:
    """(data file, var file) bytes of one column."""
    data, var = bytearray(), bytearray()
    for value in values:
        if type_code in _VARIABLE:
            data += _u64(len(var))
            var += value if type_code == BYTES else value.encode() + b"\0"
        elif type_code in _CHARS:
            n = _CHARS[type_code]
            data += value.encode().ljust(n, b"\0")[:n][::-1]
        else:
            data += struct.pack(_FIXED[type_code], value)
    return bytes(data), bytes(var)


def _decode_column(type_code: int, data: bytes, var: bytes) -> list[Any]:
    if type_code in _VARIABLE:
        count = len(data) // 8
        starts = [struct.unpack_from("=Q", data, 8 * i)[0] for i in range(count)] + [len(var)]
        raws = [var[starts[i]:starts[i + 1]] for i in range(count)]
        return raws if type_code == BYTES else [r.rstrip(b"\0").decode() for r in raws]
    if type_code in _CHARS:
        n = _CHARS[type_code]
        return [data[i:i + n][::-1].rstrip(b"\0").decode() for i in range(0, len(data), n)]
    fmt = _FIXED[type_code]
    return [v[0] for v in struct.iter_unpack(fmt, data)]


def _table_spec(folder: Path, prefix: str, table: Table, *, write: bool) -> bytes:
    spec = _str(table.name) + _u64(len(table.columns))
    for index, (name, type_code) in enumerate(table.columns):
        data_path = folder / f"{prefix}_{index}.data"
        var_path = folder / f"{prefix}_{index}.var" if type_code in _VARIABLE else None
        if write:
            data, var = _encode_column(type_code, table.rows[name])
            data_path.write_bytes(data)
            if var_path is not None:
                var_path.write_bytes(var)
        spec += _str(name) + _u64(type_code) + _str(str(data_path)) + _str("")
        spec += _str(str(var_path) if var_path else "")
    return spec


def _read_results(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    raw, pos = path.read_bytes(), 0

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return raw[pos - n:pos]

    def text() -> str:
        return take(struct.unpack("=Q", take(8))[0]).decode()

    if struct.unpack("=Q", take(8))[0] != 1:
        raise AssertionError("output control file does not start with 1")
    maps = []
    for _ in range(2):
        count = struct.unpack("=Q", take(8))[0]
        maps.append({text(): text() for _ in range(count)})
    return maps[0], maps[1]


@dataclass
class UdfRun:
    outputs: dict[str, dict[str, list[Any]]]
    results: dict[str, str]
    bin_results: dict[str, str]
    #: rows of the input tables this instance was given (what Kinetica copies for the run)
    rows_in: int = 0


@contextmanager
def kinetica_proc_on_path() -> Iterator[ModuleType]:
    """Import ``kinetica_proc`` fresh (its ProcData is a per-process singleton)."""
    real = os.environ.get("STREAMSCORE_KINETICA_PROC_DIR")
    folder = str(Path(real)) if real else str(FAKES)
    sys.path.insert(0, folder)
    sys.modules.pop("kinetica_proc", None)
    try:
        yield importlib.import_module("kinetica_proc")
    finally:
        sys.modules.pop("kinetica_proc", None)
        sys.path.remove(folder)


def load_udf(filename: str) -> ModuleType:
    """Import ``udfs/<filename>`` as a module (it is a script, not a package member)."""
    path = ROOT / "udfs" / filename
    spec = importlib.util.spec_from_file_location(f"udf_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def run_udf(
    entry: Callable[[], None] | Sequence[str],
    folder: Path,
    *,
    params: dict[str, str],
    inputs: Sequence[Table] = (),
    outputs: Sequence[Table] = (),
    rank: int = 1,
    segment: tuple[int, int] = (0, 1),
) -> UdfRun:
    """Write the control file and tables, run ``entry`` (the UDF's main), read the outputs.

    ``entry`` may instead be a command (``[python, udfs/x.py]``), run as Kinetica runs a UDF: a
    process of its own, with ``kinetica_proc`` on its path (tests a UDF under another Python).
    ``segment`` is (number, count) of the data segment this instance plays."""
    folder.mkdir(parents=True, exist_ok=True)
    request_info = {
        "proc_name": "streamscore_test", "run_id": "42", "rank_number": str(rank),
        "tom_number": str(segment[0]) if rank else "", "data_segment_id": f"seg{rank}-{segment[0]}",
        "data_segment_count": str(segment[1]), "data_segment_number": str(segment[0]),
        "head_url": "http://127.0.0.1:1", "username": "harness", "password": "not-a-secret",
    }
    control = _u64(2) + _dict(request_info) + _dict({}) + _dict(params) + _dict({})
    control += _u64(len(inputs)) + b"".join(
        _table_spec(folder, f"in{i}", t, write=True) for i, t in enumerate(inputs))
    control += _u64(len(outputs)) + b"".join(
        _table_spec(folder, f"out{i}", t, write=False) for i, t in enumerate(outputs))
    results_path, status_path = folder / "output-control", folder / "status"
    control += _str(str(results_path)) + _str(str(status_path))
    (folder / "control").write_bytes(control)
    if callable(entry):
        _run_in_process(entry, folder / "control")
    else:
        proc_dir = os.environ.get("STREAMSCORE_KINETICA_PROC_DIR") or str(FAKES)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env |= {"KINETICA_PCF": str(folder / "control"), "PYTHONPATH": proc_dir}
        done = subprocess.run(list(entry), env=env, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(entry)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    tables = {}
    for i, table in enumerate(outputs):
        tables[table.name] = {
            name: _decode_column(
                type_code,
                _read_or_empty(folder / f"out{i}_{j}.data"),
                _read_or_empty(folder / f"out{i}_{j}.var"),
            )
            for j, (name, type_code) in enumerate(table.columns)
        }
    results, bin_results = _read_results(results_path)
    rows_in = sum(len(next(iter(t.rows.values()), [])) for t in inputs)
    return UdfRun(tables, results, bin_results, rows_in)


def shard_of(key: str, segments: int) -> int:
    """The data segment a shard-key value lives on (a stable hash, like Kinetica's sharding)."""
    return zlib.crc32(key.encode()) % segments


def split_table(table: Table, segments: int, shard_key: str = "image_id") -> list[Table]:
    """``table``'s rows hash-split on ``shard_key`` into ``segments`` tables (one per segment)."""
    keys = table.rows.get(shard_key, [])
    parts = [Table(table.name, table.columns, {name: [] for name, _ in table.columns}) for _ in range(segments)]
    for row, key in enumerate(keys):
        part = parts[shard_of(str(key), segments)]
        for name, _ in table.columns:
            part.rows[name].append(table.rows[name][row])
    return parts


def run_distributed(
    entry: Callable[[], None] | Sequence[str],
    folder: Path,
    *,
    params: dict[str, str],
    inputs: Sequence[Table] = (),
    outputs: Sequence[Table] = (),
    segments: int = 2,
) -> list[UdfRun]:
    """A distributed proc run: the input tables hash-split on image_id over ``segments`` data
    segments, ``entry`` run once per segment (rank 1 … segments) on its part, as Kinetica does."""
    split = [split_table(table, segments) for table in inputs]
    return [
        run_udf(entry, folder / f"segment{number}", params=params,
                inputs=[parts[number] for parts in split], outputs=outputs,
                rank=number + 1, segment=(number, segments))
        for number in range(segments)
    ]


def _run_in_process(entry: Callable[[], None], control: Path) -> None:
    previous = os.environ.get("KINETICA_PCF")
    os.environ["KINETICA_PCF"] = str(control)
    try:
        with kinetica_proc_on_path():
            entry()
    finally:
        if previous is None:
            os.environ.pop("KINETICA_PCF", None)
        else:
            os.environ["KINETICA_PCF"] = previous


def _read_or_empty(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""
