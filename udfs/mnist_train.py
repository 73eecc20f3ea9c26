"""streamscore non-distributed training UDF for Kinetica (runs inside the database).

Trains the seed network of the 2016 notebook -- 784 -> 100 sigmoid -> 10
softmax, plain SGD, learning rate 0.5, batches of 100 -- with numpy on the rows
of a training-images table, then writes the model as data: one ``model_layers``
row per layer (float32 weights/biases as little-endian bytes) and one
``models`` row (model id, weights digest, manifest, loss, created time),
both upserted on their primary keys so a rerun converges.

A non-distributed UDF gets no table data from Kinetica, so it reads and writes
through the gpudb client with the run's temporary credentials (``head_url``,
``username``, ``password`` in ``request_info``). Tests inject an in-memory store.

Params (strings): ``schema``, ``train_table``, ``model_name``, ``model_version``,
``steps``, optional ``hidden`` (comma-separated, default 100), ``batch_size``
(100), ``learning_rate`` (0.5), ``seed`` (2016), ``limit`` (0 = all rows).

Standalone on purpose (numpy + stdlib + kinetica_proc + gpudb): the digest and
model id below duplicate ``streamscore.model.artifact.weights_digest`` and
``streamscore.backends.kinetica_tables.model_id``; unit tests check they agree.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

PIXELS = 784
CLASSES = 10
INPUT_SCALE = 1 / 255


# -- pure helpers (importable without kinetica_proc) ---------------------------------------
def weights_digest(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        digest.update(f"layer{index}:{w.shape[0]}x{w.shape[1]};".encode())
        digest.update(np.ascontiguousarray(w, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(b, dtype="<f4").tobytes())
    return digest.hexdigest()


def model_id(name: str, version: int, sha256: str) -> str:
    return f"{name}-v{version}-{sha256[:12]}"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def train(
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    hidden: Sequence[int] = (100,),
    steps: int = 30_000,
    batch_size: int = 100,
    learning_rate: float = 0.5,
    seed: int = 2016,
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """SGD on mean cross-entropy; returns weights, biases and the mean loss of the last 100 steps."""
    rng = np.random.default_rng(seed)
    sizes = [PIXELS, *hidden, CLASSES]
    weights, biases = [], []
    for n_in, n_out in itertools.pairwise(sizes):
        limit = np.sqrt(6.0 / (n_in + n_out))  # Glorot uniform, as Keras does
        weights.append(rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32))
        biases.append(np.zeros(n_out, np.float32))
    x_all = pixels.astype(np.float32) * np.float32(INPUT_SCALE)
    y_all = np.eye(CLASSES, dtype=np.float32)[labels.astype(np.int64)]
    order = rng.permutation(len(x_all))
    cursor, recent = 0, []
    lr = np.float32(learning_rate)
    for _ in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(len(x_all)), 0
        pick = order[cursor : cursor + batch_size]
        cursor += batch_size
        activations = [x_all[pick]]
        for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = activations[-1] @ w + b
            activations.append(_softmax(z) if index == len(weights) - 1 else _sigmoid(z))
        y = y_all[pick]
        recent.append(float(-np.mean(np.sum(y * np.log(activations[-1] + 1e-12), axis=1))))
        recent = recent[-100:]
        delta = (activations[-1] - y) / np.float32(len(pick))  # d loss / d z of the softmax layer
        for index in range(len(weights) - 1, -1, -1):
            grad_w = activations[index].T @ delta
            grad_b = delta.sum(axis=0)
            if index > 0:
                a = activations[index]
                delta = (delta @ weights[index].T) * a * (1 - a)  # through the sigmoid
            weights[index] -= lr * grad_w
            biases[index] -= lr * grad_b
    return weights, biases, float(np.mean(recent)) if recent else float("nan")


# -- data access ---------------------------------------------------------------------------
class Store(Protocol):
    def load_training(self, table: str, limit: int) -> tuple[np.ndarray, np.ndarray]: ...

    def write_model(self, layers: list[dict[str, Any]], model: dict[str, Any]) -> None: ...


class GpudbStore:
    """Reads training rows and writes the model through gpudb (temporary run credentials)."""

    def __init__(self, request_info: Any, schema: str) -> None:
        import gpudb  # present in Kinetica's UDF environment

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", schema):
            raise ValueError(f"schema {schema!r} is not a plain identifier")
        self._gpudb = gpudb
        self._schema = schema
        self._db = gpudb.GPUdb(
            host=request_info["head_url"],
            username=request_info.get("username", ""),
            password=request_info.get("password", ""),
        )

    def load_training(self, table: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", table):
            raise ValueError(f"table {table!r} is not a plain identifier")
        blobs, labels = [], []
        sql = f"SELECT pixels, label FROM {self._schema}.{table} ORDER BY image_id"
        with self._db.query(sql, batch_size=10_000) as rows:
            for row in rows:
                blobs.append(bytes(row[0]))
                labels.append(int(row[1]))
                if limit and len(labels) >= limit:
                    break
        pixels = np.frombuffer(b"".join(blobs), np.uint8).reshape(-1, PIXELS)
        return pixels, np.asarray(labels, np.int64)

    def write_model(self, layers: list[dict[str, Any]], model: dict[str, Any]) -> None:
        upsert = {"update_on_existing_pk": "true"}
        # layers first, the models row last: a version is visible only when complete
        table = self._gpudb.GPUdbTable(None, name=f"{self._schema}.model_layers", db=self._db)
        table.insert_records(layers, options=upsert)
        table = self._gpudb.GPUdbTable(None, name=f"{self._schema}.models", db=self._db)
        table.insert_records([model], options=upsert)


def build_rows(
    name: str, version: int, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
    activations: Sequence[str], metrics: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``model_layers`` rows and the ``models`` row for a trained network."""
    sha = weights_digest(weights, biases)
    created = int(time.time() * 1000)
    layers = [
        {
            "model_name": name, "model_version": version, "layer": index,
            "n_in": int(w.shape[0]), "n_out": int(w.shape[1]), "activation": act,
            "weights": np.ascontiguousarray(w, "<f4").tobytes(),
            "biases": np.ascontiguousarray(b, "<f4").tobytes(),
        }
        for index, (w, b, act) in enumerate(zip(weights, biases, activations, strict=True))
    ]
    manifest = {
        "name": name, "version": version, "activations": list(activations),
        "input_scale": INPUT_SCALE, "layers": [PIXELS, *(int(w.shape[1]) for w in weights)],
        "sha256": sha, "created_at": created, "metrics": metrics,
    }
    model = {
        "model_name": name, "model_version": version, "model_id": model_id(name, version, sha),
        "sha256": sha, "input_scale": INPUT_SCALE,
        "manifest": json.dumps(manifest, sort_keys=True), "canary_pixels": None,
        "loss": metrics.get("loss"), "created_at": created,
    }
    return layers, model


# -- kinetica_proc glue -------------------------------------------------------------------
def run(proc: Any, store: Store) -> dict[str, Any]:
    params = proc.params
    name, version = params["model_name"], int(params["model_version"])
    hidden = [int(h) for h in params.get("hidden", "100").split(",") if h.strip()]
    steps = int(params["steps"])
    batch_size = int(params.get("batch_size", "100"))
    learning_rate = float(params.get("learning_rate", "0.5"))
    proc.status = "loading training rows"
    pixels, labels = store.load_training(params["train_table"], int(params.get("limit", "0")))
    if len(labels) < batch_size:
        raise ValueError(f"only {len(labels)} training rows in {params['train_table']}")
    proc.status = f"training on {len(labels)} rows for {steps} steps"
    started = time.monotonic()
    weights, biases, loss = train(
        pixels, labels, hidden=hidden, steps=steps, batch_size=batch_size,
        learning_rate=learning_rate, seed=int(params.get("seed", "2016")),
    )
    metrics = {
        "loss": round(loss, 6), "steps": steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "hidden": hidden, "train_rows": len(labels),
        "train_seconds": round(time.monotonic() - started, 1), "trainer": "kinetica-udf",
    }
    activations = ["sigmoid"] * len(hidden) + ["softmax"]
    layers, model = build_rows(name, version, weights, biases, activations, metrics)
    store.write_model(layers, model)
    proc.results["model_id"] = model["model_id"]
    proc.results["loss"] = str(metrics["loss"])
    proc.status = f"wrote {model['model_id']} (loss {metrics['loss']})"
    return model


def main(store: Store | None = None) -> None:
    """Entry point inside Kinetica; tests pass ``store`` to bypass the database."""
    from kinetica_proc import ProcData

    proc = ProcData()
    run(proc, store or GpudbStore(proc.request_info, proc.params["schema"]))
    proc.complete()


if __name__ == "__main__":
    main()
