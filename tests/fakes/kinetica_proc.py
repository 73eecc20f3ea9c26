"""A minimal stand-in for Kinetica's ``kinetica_proc`` module (tests only).

The real module is shipped by the Kinetica server to UDFs and is not on PyPI.
This one is written from the control-file format described in
``shared/reference/kinetica.md`` (section 2) and implements only what the
streamscore UDFs use: request_info, params, bin_params (decoded as text, like
7.2.0.1), input tables and columns, output tables with ``size``, slice assignment
for fixed-width columns and ``append``/``extend`` for variable-width ones,
results, bin_results, status and ``complete()``.
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

STRING, BYTES, JSON = 0x1, 0x2, 0x100
VARIABLE = {STRING, BYTES, JSON}
FIXED = {
    0x10: "=d", 0x20: "=f", 0x40: "=i", 0x80: "=q", 0x10000: "=q", 0x20000: "=b", 0x40000: "=h",
}
CHARS = {
    0x80000: 1, 0x100000: 2, 0x1000: 4, 0x2000: 8, 0x4000: 16, 0x200000: 32, 0x400000: 64,
    0x800000: 128, 0x1000000: 256,
}


class ColumnType:
    STRING, BYTES, DOUBLE, FLOAT, INT, LONG, TIMESTAMP, INT16 = 0x1, 0x2, 0x10, 0x20, 0x40, 0x80, 0x10000, 0x40000
    CHAR16, CHAR64, CHAR128 = 0x4000, 0x400000, 0x800000


def _u64(f: BinaryIO) -> int:
    return int(struct.unpack("=Q", f.read(8))[0])


def _str(f: BinaryIO) -> str:
    return f.read(_u64(f)).decode("utf-8")


def _dict(f: BinaryIO) -> dict[str, str]:
    return dict((_str(f), _str(f)) for _ in range(_u64(f)))


def width(type_code: int) -> int:
    if type_code in FIXED:
        return struct.calcsize(FIXED[type_code])
    if type_code in CHARS:
        return CHARS[type_code]
    return 8  # offset slot of a variable-width column


def _read(path: str) -> bytes:
    if not path or not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


class _Column:
    def __init__(self, f: BinaryIO) -> None:
        self.name = _str(f)
        self.type = _u64(f)
        self.data_path, self.nulls_path, self.var_path = _str(f), _str(f), _str(f)
        self.is_nullable = bool(self.nulls_path)


class InputColumn(_Column):
    def __init__(self, f: BinaryIO) -> None:
        super().__init__(f)
        data, var = _read(self.data_path), _read(self.var_path)
        nulls = _read(self.nulls_path)
        count = len(data) // width(self.type)
        values: list[Any] = []
        for i in range(count):
            if nulls and nulls[i]:
                values.append(None)
            elif self.type in VARIABLE:
                start = struct.unpack_from("=Q", data, 8 * i)[0]
                end = struct.unpack_from("=Q", data, 8 * (i + 1))[0] if i + 1 < count else len(var)
                raw = var[start:end]
                values.append(raw if self.type == BYTES else raw.rstrip(b"\0").decode())
            elif self.type in CHARS:
                n = CHARS[self.type]
                values.append(data[i * n:(i + 1) * n][::-1].rstrip(b"\0").decode())
            else:
                values.append(struct.unpack_from(FIXED[self.type], data, i * width(self.type))[0])
        self._values = values
        self.size = count

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Any) -> Any:
        return self._values[index]

    def __iter__(self) -> Any:
        return iter(self._values)


class OutputColumn(_Column):
    def __init__(self, f: BinaryIO) -> None:
        super().__init__(f)
        self._values: list[Any] = []
        self._size = 0

    def _resize(self, n: int) -> None:
        self._size = n
        if self.type not in VARIABLE:
            self._values = [0 if self.type in FIXED else ""] * n

    def __setitem__(self, index: Any, value: Any) -> None:
        if self.type in VARIABLE:
            raise RuntimeError(f"column {self.name} is variable width: use append/extend")
        if isinstance(index, slice):
            count = len(range(*index.indices(self._size)))
            if len(value) != count:
                raise IndexError(f"{len(value)} values for {count} rows")
        self._values[index] = value

    def append(self, value: Any) -> None:
        if len(self._values) >= self._size:
            raise IndexError("Insufficient table size")
        self._values.append(value)

    def extend(self, values: Any) -> None:
        for value in values:
            self.append(value)

    def _write(self) -> None:
        data, var, nulls = bytearray(), bytearray(), bytearray()
        for value in self._values:
            nulls.append(1 if value is None else 0)
            if self.type in VARIABLE:
                data += struct.pack("=Q", len(var))
                if value is not None:
                    var += value if self.type == BYTES else str(value).encode() + b"\0"
            elif self.type in CHARS:
                n = CHARS[self.type]
                data += (b"" if value is None else str(value).encode()).ljust(n, b"\0")[:n][::-1]
            else:
                data += struct.pack(FIXED[self.type], 0 if value is None else value)
        with open(self.data_path, "wb") as f:
            f.write(data)
        if self.nulls_path:
            with open(self.nulls_path, "wb") as f:
                f.write(nulls)
        if self.var_path:
            with open(self.var_path, "wb") as f:
                f.write(var)


class _Table:
    def __init__(self, f: BinaryIO, column_class: type[_Column]) -> None:
        self.name = _str(f)
        self._columns = [column_class(f) for _ in range(_u64(f))]

    def __len__(self) -> int:
        return len(self._columns)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            return self._columns[key]
        for column in self._columns:
            if column.name == key:
                return column
        raise KeyError(key)


class InputTable(_Table):
    @property
    def size(self) -> int:
        return min((c.size for c in self._columns), default=0)  # type: ignore[attr-defined]


class OutputTable(_Table):
    _size = 0

    @property
    def size(self) -> int:
        return self._size

    @size.setter
    def size(self, n: int) -> None:
        self._size = n
        for column in self._columns:
            column._resize(n)  # type: ignore[attr-defined]


def _data_set(f: BinaryIO, table_class: type[_Table], column_class: type[_Column]) -> list[Any]:
    return [table_class(f, column_class) for _ in range(_u64(f))]


class ProcData:
    """Reads the control file named by KINETICA_PCF (one instance per process)."""

    ColumnType = ColumnType

    def __init__(self) -> None:
        path = os.environ.get("KINETICA_PCF")
        if not path:
            raise RuntimeError("No control file specified (KINETICA_PCF)")
        with open(path, "rb") as f:
            self._version = _u64(f)
            self.request_info = _dict(f)
            self.request_info.update(_dict(f))
            self.params = _dict(f)
            raw_bin = _dict(f)
            self.bin_params = {k: v.encode().decode("utf-8", errors="replace") for k, v in raw_bin.items()}
            self.input_data = _data_set(f, InputTable, InputColumn)
            self.output_data = _data_set(f, OutputTable, OutputColumn)
            self._output_control = _str(f)
            self._status_path = _str(f) if self._version >= 2 else ""
        self.results: dict[str, str] = {}
        self.bin_results: dict[str, Any] = {}
        self.status = ""

    def complete(self) -> None:
        for table in self.output_data:
            for column in table._columns:
                column._write()
        with open(self._output_control, "wb") as f:
            f.write(struct.pack("=Q", 1))
            for mapping in (self.results, self.bin_results):
                f.write(struct.pack("=Q", len(mapping)))
                for key, value in mapping.items():
                    for text in (str(key), str(value)):
                        raw = text.encode()
                        f.write(struct.pack("=Q", len(raw)) + raw)
        if self._status_path:
            with open(self._status_path, "w", encoding="utf-8") as f:
                f.write(self.status)
