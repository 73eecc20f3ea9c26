"""A local stand-in for Kinetica's HTTP API, for tests: ``python -m tests.fakes.kinetica_server --port P``.

Requests are decoded and responses encoded with gpudb's own Avro schemas (the ones the installed
client uses, ``GPUdb.load_gpudb_schemas``), wrapped in ``gpudb_response`` as Kinetica does. Only
the endpoints the streamscore backend uses are answered (see :data:`Server.ENDPOINTS`); any other
answers an ERROR naming it. SQL runs on an embedded DuckDB (tests/fakes/kinetica_sql.py: only the
statements of sql/kinetica), procs run through tests/kinetica_harness.py over two hash-split data
segments. tests/fakes/README.md lists what it does not reproduce.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import gpudb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kinetica_harness as harness
from fakes.kinetica_sql import Database, KineticaTable

SEGMENTS = 2
_HARNESS_TYPES = {"bytes": harness.BYTES, "float": harness.FLOAT, "double": harness.DOUBLE, "int": harness.INT,
                  "long": harness.LONG}
_CHAR_TYPES = {"char16": harness.CHAR16, "char64": harness.CHAR64, "char128": harness.CHAR128}


def _schemas() -> dict[str, dict[str, Any]]:
    client = object.__new__(gpudb.GPUdb)
    client.load_gpudb_schemas()
    return dict(client.gpudb_schemas)


def _zigzag(n: int) -> bytes:
    value, out = (n << 1) ^ (n >> 63), bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _avro_bytes(raw: bytes) -> bytes:
    return _zigzag(len(raw)) + raw


def _default(avro_type: Any) -> Any:
    if isinstance(avro_type, dict):
        return {"map": {}, "array": []}.get(avro_type["type"])
    return {"string": "", "bytes": b"", "long": 0, "int": 0, "boolean": False, "double": 0.0, "float": 0.0}[avro_type]


def _dynamic_type(duck_type: str) -> tuple[str, str]:
    """(Avro item type, Kinetica column datatype) of a DuckDB result column."""
    upper = duck_type.upper()
    if upper.startswith("VARCHAR"):
        return "string", "string"
    return {"BLOB": ("bytes", "bytes"), "BIGINT": ("long", "long"), "INTEGER": ("int", "int"),
            "SMALLINT": ("int", "int"), "FLOAT": ("float", "float"), "DOUBLE": ("double", "double"),
            "HUGEINT": ("long", "long")}[upper]


def encode_dynamic(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> tuple[str, bytes]:
    """(schema string, Avro bytes) of a result set in Kinetica's column-major dynamic format."""
    fields, body = [], bytearray()
    for index, (_name, duck_type) in enumerate(columns):
        item, _ = _dynamic_type(duck_type)
        fields.append({"name": f"column_{index + 1}", "type": {"type": "array", "items": [item, "null"]}})
        values = [row[index] for row in rows]
        if values:
            body += _zigzag(len(values))
            for value in values:
                body += _zigzag(1) if value is None else _zigzag(0) + _encode_value(item, value)
        body += _zigzag(0)
    for meta in ("column_headers", "column_datatypes"):
        fields.append({"name": meta, "type": {"type": "array", "items": "string"}})
        names = [c[0] for c in columns] if meta == "column_headers" else [_dynamic_type(c[1])[1] for c in columns]
        if names:
            body += _zigzag(len(names)) + b"".join(_avro_bytes(n.encode()) for n in names)
        body += _zigzag(0)
    schema = {"type": "record", "name": "generic_response", "fields": fields}
    return json.dumps(schema), bytes(body)


def _encode_value(item: str, value: Any) -> bytes:
    if item == "string":
        return _avro_bytes(str(value).encode())
    if item == "bytes":
        return _avro_bytes(bytes(value))
    if item in ("int", "long"):
        return _zigzag(int(value))
    return struct.pack("<f" if item == "float" else "<d", float(value))


class Server:
    """The endpoints, over one Database and the registered procs."""

    def __init__(self, db: Database, workdir: Path) -> None:
        self.db, self.workdir = db, workdir
        self.url = ""  # set once the HTTP server has its port: every rank's URL is this one
        self.worker_url = ""  # announced for the worker ranks instead (e.g. an unreachable address)
        self.schemas = _schemas()
        self.procs: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.run_ids = itertools.count(1)
        self.proc_lock = threading.Lock()  # KINETICA_PCF is process-wide: one UDF instance at a time
        self.ENDPOINTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/show/system/status": self.system_status, "/show/system/properties": self.system_properties,
            "/admin/show/shards": self.show_shards,
            "/execute/sql": self.execute_sql, "/show/table": self.show_table, "/has/table": self.has_table,
            "/insert/records": self.insert_records, "/clear/table": self.clear_table,
            "/has/proc": self.has_proc, "/create/proc": self.create_proc, "/execute/proc": self.execute_proc,
            "/show/proc/status": self.show_proc_status, "/kill/proc": self.kill_proc,
        }

    # -- wire ------------------------------------------------------------------------------
    def answer(self, endpoint: str, body: bytes) -> bytes:
        schemas = self.schemas.get(endpoint)
        handler = self.ENDPOINTS.get(endpoint)
        if schemas is None or handler is None:
            return self.wrap("ERROR", f"the Kinetica stand-in does not implement {endpoint}", "none", b"")
        try:
            request = schemas["REQ_SCHEMA"].decode(body)
            response = handler(request)
        except Exception as exc:  # the real server answers every failure with status ERROR
            return self.wrap("ERROR", f"{type(exc).__name__}: {exc}", "none", b"")
        spec = json.loads(schemas["RSP_SCHEMA_STR"])
        full = {f["name"]: response.get(f["name"], _default(f["type"])) for f in spec["fields"]}
        return self.wrap("OK", "", spec["name"], schemas["RSP_SCHEMA"].encode(full))

    @staticmethod
    def wrap(status: str, message: str, data_type: str, data: bytes) -> bytes:
        return b"".join([_avro_bytes(status.encode()), _avro_bytes(message.encode()),
                         _avro_bytes(data_type.encode()), _avro_bytes(data), _avro_bytes(b"")])

    # -- system ----------------------------------------------------------------------------
    def system_status(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"status_map": {"system": json.dumps({"status": "running"})}}

    def system_properties(self, request: dict[str, Any]) -> dict[str, Any]:
        """One host; a head rank and SEGMENTS worker ranks, all answering at this server's URL
        (so multi-head ingest posts each shard's records to "its" worker, i.e. back here)."""
        return {"property_map": {
            "version.gpudb_core_version": "7.2.3.0", "conf.enable_ha": "FALSE", "conf.number_of_hosts": "1",
            "conf.host0_public_urls": self.url, "conf.enable_worker_http_servers": "TRUE",
            "conf.worker_http_server_urls": ";".join([self.url] + [self.worker_url or self.url] * SEGMENTS),
        }}

    def show_shards(self, request: dict[str, Any]) -> dict[str, Any]:
        shards = 64
        return {"version": 1, "rank": [1 + shard % SEGMENTS for shard in range(shards)], "tom": [0] * shards}

    # -- tables and SQL --------------------------------------------------------------------
    def execute_sql(self, request: dict[str, Any]) -> dict[str, Any]:
        params = json.loads(request["options"].get("query_parameters", "[]"))
        columns, rows, affected = self.db.execute(request["statement"], params,
                                                  schema=request["options"].get("current_schema", ""))
        if not columns:
            schema, data = encode_dynamic([("count_affected", "BIGINT")], [])
            return {"count_affected": affected, "response_schema_str": schema, "binary_encoded_response": data}
        offset, limit = int(request["offset"]), int(request["limit"])
        page = rows[offset:] if limit < 0 else rows[offset:offset + limit]
        schema, data = encode_dynamic(columns, page)
        return {"response_schema_str": schema, "binary_encoded_response": data,
                "total_number_of_records": len(rows), "has_more_records": offset + len(page) < len(rows)}

    def show_table(self, request: dict[str, Any]) -> dict[str, Any]:
        table = self.db.table(request["table_name"])
        return {"table_name": table.name, "table_names": [table.name],
                "table_descriptions": [["REPLICATED"] if table.replicated else []],
                "type_ids": [f"type_{table.name}"], "type_schemas": [table.type_schema()],
                "type_labels": [table.name], "properties": [table.properties()],
                "additional_info": [{"collection_names": table.name.split(".")[0]}],
                "sizes": [self.db.count(table.name)], "full_sizes": [self.db.count(table.name)], "join_sizes": [0.0]}

    def has_table(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"table_name": request["table_name"], "table_exists": request["table_name"].lower() in self.db.tables}

    def clear_table(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"table_name": request["table_name"]}  # paging tables: the stand-in makes none

    def insert_records(self, request: dict[str, Any]) -> dict[str, Any]:
        table = self.db.table(request["table_name"])
        rows = gpudb.GPUdbRecord.decode_binary_data(table.type_schema(), list(request["list"]))
        upsert = request["options"].get("update_on_existing_pk", "false").lower() == "true"
        inserted, updated = self.db.upsert(table.name, [dict(r) for r in rows], upsert)
        return {"count_inserted": inserted, "count_updated": updated}

    # -- procs -----------------------------------------------------------------------------
    def has_proc(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"proc_name": request["proc_name"], "proc_exists": request["proc_name"] in self.procs}

    def create_proc(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["proc_name"] in self.procs:
            raise ValueError(f"Proc '{request['proc_name']}' already exists")
        self.procs[request["proc_name"]] = request
        return {"proc_name": request["proc_name"]}

    def execute_proc(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run the proc to the end before answering (Kinetica runs it asynchronously)."""
        proc = self.procs.get(request["proc_name"])
        if proc is None:
            raise KeyError(f"Proc '{request['proc_name']}' does not exist")
        if proc["execution_mode"] != "distributed":
            raise ValueError("the stand-in runs distributed procs only")
        run_id = str(next(self.run_ids))
        inputs = [self._input(name, request["input_column_names"].get(name, []))
                  for name in request["input_table_names"]]
        outputs = [self._harness_table(self.db.table(name), None) for name in request["output_table_names"]]
        entry = _load_udf(proc, self.workdir / "procs")
        with self.proc_lock:
            try:
                runs = harness.run_distributed(entry, self.workdir / "runs" / run_id, params=dict(request["params"]),
                                               inputs=inputs, outputs=outputs, segments=SEGMENTS)
            except Exception as exc:
                self.runs[run_id] = {"overall": "error", "runs": [], "message": f"{type(exc).__name__}: {exc}"}
                return {"run_id": run_id}
        for run in runs:
            for table in outputs:
                columns = run.outputs[table.name]
                count = len(next(iter(columns.values()), []))
                self.db.upsert(table.name, [{n: columns[n][i] for n in columns} for i in range(count)], False)
        self.runs[run_id] = {"overall": "complete", "runs": runs, "message": ""}
        return {"run_id": run_id}

    def show_proc_status(self, request: dict[str, Any]) -> dict[str, Any]:
        run_id = request["run_id"]
        run = self.runs.get(run_id)
        if run is None:
            return {}
        segments = {f"segment{i}": r for i, r in enumerate(run["runs"])} or {"segment0": None}
        status = run["overall"]
        answer = {
            "overall_statuses": {run_id: status},
            "statuses": {run_id: {s: status for s in segments}},
            "messages": {run_id: {s: run["message"] for s in segments}},
            "results": {run_id: {s: (r.results if r else {}) for s, r in segments.items()}},
            "output": {run_id: {s: {"stdout": [], "stderr": [run["message"]] if run["message"] else []}
                                for s in segments}},
        }
        if request["options"].get("clear_complete") == "true":
            self.runs.pop(run_id, None)
        return answer

    def kill_proc(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"run_ids": []}  # runs finish before execute_proc answers: nothing is ever running

    def _harness_table(self, table: KineticaTable, names: list[str] | None) -> harness.Table:
        columns = []
        for column in table.columns:
            if names and column.name not in names:
                continue
            chars = [_CHAR_TYPES[p] for p in column.properties if p in _CHAR_TYPES]
            code = chars[0] if chars else harness.TIMESTAMP if "timestamp" in column.properties else \
                harness.INT16 if "int16" in column.properties else _HARNESS_TYPES.get(column.base, harness.STRING)
            columns.append((column.name, code))
        if names:
            columns.sort(key=lambda c: names.index(c[0]))
        return harness.Table(table.name, columns)

    def _input(self, name: str, names: list[str]) -> harness.Table:
        table = self._harness_table(self.db.table(name), names)
        rows = self.db.select(table.name, [c[0] for c in table.columns])
        table.rows = {column: [row[i] for row in rows] for i, (column, _) in enumerate(table.columns)}
        return table


def _load_udf(proc: dict[str, Any], folder: Path) -> Callable[[], None]:
    """The ``main`` of the proc's script (its first file), as registered with create_proc."""
    folder.mkdir(parents=True, exist_ok=True)
    filename, source = next(iter(proc["files"].items()))
    path = folder / f"{proc['proc_name']}_{filename}"
    path.write_bytes(bytes(source))
    spec = importlib.util.spec_from_file_location(f"udf_{proc['proc_name']}", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    main: Callable[[], None] = module.main
    return main


def make_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = server.answer(self.path.split("?")[0], body)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("x-request-time-secs", "0.001")  # multi-head ingest reads it
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            answer = b"Kinetica is running!"  # gpudb's ping (and the compose healthcheck) reads GET /
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve(port: int, host: str = "127.0.0.1", database: str = ":memory:", worker_url: str = "") -> ThreadingHTTPServer:
    """A started-but-not-serving HTTP server (call ``serve_forever``; port 0 picks a free one).
    ``worker_url``: the address announced for the worker ranks (default: this server's)."""
    workdir = Path(tempfile.mkdtemp(prefix="kinetica-standin-"))
    server = Server(Database(database), workdir)
    httpd = ThreadingHTTPServer((host, port), make_handler(server))
    server.url = f"http://{host}:{httpd.server_address[1]}"
    server.worker_url = worker_url
    httpd.daemon_threads = True
    return httpd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9191)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--database", default=":memory:", help="DuckDB file (default: in memory)")
    parser.add_argument("--worker-url", default="", help="address announced for the worker ranks")
    args = parser.parse_args()
    httpd = serve(args.port, args.host, args.database, args.worker_url)
    print(f"kinetica stand-in listening on http://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
