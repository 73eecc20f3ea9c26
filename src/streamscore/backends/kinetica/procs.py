"""Register and run the streamscore UDFs (``udfs/``) in Kinetica.

A proc's name carries a digest of its source (``streamscore_mnist_infer_<sha>``), so
registering is create-if-missing and never has to delete a proc another consumer may
be running; new UDF code simply gets a new name.

``execute_proc`` is asynchronous: :func:`wait` polls ``show_proc_status`` until the
run is ``complete`` (and clears the run once, after reading its final status), raises
:class:`BackendError` with the UDF's own output lines when it failed, :class:`BackendUnavailable`
when it was killed or lost the database (``udf-interrupted``), and kills the run and raises
:class:`BackendUnavailable` on timeout.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from streamscore.errors import BackendError, BackendUnavailable

INFER_UDF = "mnist_infer.py"
TRAIN_UDF = "mnist_train.py"
#: output lines per segment kept by Kinetica and quoted in errors
MAX_OUTPUT_LINES = 40
_FINISHED_BAD = ("error", "killed")
#: what a UDF's output says when it lost the database rather than failed (kinetica_proc raises
#: gpudb's connection errors): such a run is retried like an outage, not reported as a fault
INTERRUPTED_MARKERS = (
    "GPUdbConnectionException", "GPUdbHAUnavailableException", "GPUdbExitException",
    "HA failover unavailable", "Connection refused", "Connection reset",
)


def udf_source(filename: str) -> bytes:
    """The UDF script as shipped inside the package (``streamscore/udfs``)."""
    return (resources.files("streamscore") / "udfs" / filename).read_bytes()


def proc_name(filename: str, source: bytes) -> str:
    stem = filename.removesuffix(".py")
    return f"streamscore_{stem}_{hashlib.sha256(source).hexdigest()[:10]}"


def checked(response: Mapping[str, Any], action: str) -> Mapping[str, Any]:
    """A low-level gpudb response, or BackendError with the server's message.

    Low-level ``GPUdb.<endpoint>()`` calls return ``status_info`` instead of raising.
    """
    info = response.get("status_info", {})
    if info.get("status", "OK") != "OK":
        raise BackendError(f"kinetica failed while {action}: {info.get('message', 'no message')}")
    return response


def register(db: Any, filename: str, mode: str) -> str:
    """Create the proc for a UDF file if it does not exist yet; returns its name."""
    source = udf_source(filename)
    name = proc_name(filename, source)
    if checked(db.has_proc(proc_name=name), f"looking up proc {name}")["proc_exists"]:
        return name
    response = db.create_proc(
        proc_name=name, execution_mode=mode, files={filename: source},
        command="python", args=[filename], options={},
    )
    if response.get("status_info", {}).get("status", "OK") != "OK":
        # another consumer may have created it between our check and our create
        if checked(db.has_proc(proc_name=name), f"looking up proc {name}")["proc_exists"]:
            return name
        checked(response, f"creating proc {name}")
    return name


@dataclass
class ProcRun:
    """A finished run: per data segment, the UDF's results and output lines."""

    run_id: str
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    output: dict[str, list[str]] = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(int(r.get(key, "0")) for r in self.results.values())


def _segment_lines(status: Mapping[str, Any], run_id: str, segment: str) -> list[str]:
    output = status.get("output", {}).get(run_id, {}).get(segment, {})
    lines = [f"stderr: {line}" for line in output.get("stderr", [])]
    lines += [f"stdout: {line}" for line in output.get("stdout", [])]
    return lines[-MAX_OUTPUT_LINES:]


def failure_report(status: Mapping[str, Any], run_id: str) -> str:
    """Every failed segment's status, message and last output lines, for the error."""
    parts: list[str] = []
    segments = status.get("statuses", {}).get(run_id, {})
    for segment, seg_status in sorted(segments.items()):
        if seg_status == "complete":
            continue
        message = status.get("messages", {}).get(run_id, {}).get(segment, "")
        parts.append(f"[segment {segment}: {seg_status}] {message}".rstrip())
        parts.extend(f"    {line}" for line in _segment_lines(status, run_id, segment))
    return "\n".join(parts) or "(no segment reported a message)"


def execute(
    db: Any,
    name: str,
    *,
    params: dict[str, str],
    inputs: Sequence[str] = (),
    input_columns: dict[str, list[str]] | None = None,
    outputs: Sequence[str] = (),
    timeout: float,
) -> ProcRun:
    """Run a proc and wait for it (see :func:`wait`)."""
    response = checked(
        db.execute_proc(
            proc_name=name, params=params, bin_params={}, input_table_names=list(inputs),
            input_column_names=input_columns or {}, output_table_names=list(outputs),
            options={"max_output_lines": str(MAX_OUTPUT_LINES)},
        ),
        f"starting proc {name}",
    )
    return wait(db, name, str(response["run_id"]), timeout)


def infer(
    db: Any, name: str, *, schema: str, scoring_id: str, model: Mapping[str, str], weights: Mapping[str, str],
    expected: int, timeout: float,
) -> ProcRun:
    """Run the inference UDF ``name`` over the ``score_inbox`` rows of ``scoring_id`` into
    ``prediction_stage``; BackendUnavailable ``udf-incomplete`` unless it scored ``expected`` rows.

    ``model`` holds ``model_name``, ``model_version`` and ``role``; ``weights`` the model's
    params (tables.weights_params).
    """
    inbox = f"{schema}.score_inbox"
    run = execute(
        db, name, params={"batch_id": scoring_id, **model, **weights},
        inputs=[inbox], input_columns={inbox: ["image_id", "pixels", "batch_id"]},
        outputs=[f"{schema}.prediction_stage"], timeout=timeout,
    )
    scored = run.total("scored")
    if scored != expected:
        raise BackendUnavailable(
            f"UDF run {run.run_id} scored {scored} of {expected} rows of batch {scoring_id}",
            reason="udf-incomplete",
        )
    return run


def wait(
    db: Any,
    name: str,
    run_id: str,
    timeout: float,
    *,
    poll: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ProcRun:
    """Poll until the run is complete; BackendError with the UDF output when it failed."""
    if not run_id:
        raise BackendError(f"kinetica returned no run id for proc {name}")
    deadline = clock() + timeout
    while True:
        # no clear_complete while polling: it would drop the results of ranks that finished
        # before the others; the run is cleared once, after its final status was read
        status = checked(
            db.show_proc_status(run_id=run_id, options={}), f"polling proc {name} run {run_id}",
        )
        overall = status.get("overall_statuses", {}).get(run_id, "none")
        if overall == "complete":
            run = ProcRun(
                run_id,
                {seg: dict(r) for seg, r in status.get("results", {}).get(run_id, {}).items()},
                {seg: _segment_lines(status, run_id, seg)
                 for seg in status.get("statuses", {}).get(run_id, {})},
            )
            _clear(db, run_id)
            return run
        if overall in _FINISHED_BAD:
            _clear(db, run_id)
            report = failure_report(status, run_id)
            if overall == "killed" or any(marker in report for marker in INTERRUPTED_MARKERS):
                # the run was stopped or lost the database, not wrong: the batch is written again
                raise BackendUnavailable(
                    f"UDF {name} run {run_id} was interrupted ({overall}); the batch will be "
                    f"written again:\n{report}", retry_after=5.0, reason="udf-interrupted",
                )
            raise BackendError(
                f"UDF {name} run {run_id} ended with status {overall}:\n{report}", reason="udf-failed",
            )
        if clock() >= deadline:
            # run_id is non-empty here: an empty run id would kill every running proc
            db.kill_proc(run_id=run_id, options={})
            raise BackendUnavailable(
                f"UDF {name} run {run_id} did not finish within {timeout:g} s (killed)",
                retry_after=5.0, reason="udf-timeout",
            )
        sleep(poll)
        poll = min(poll * 1.5, 1.0)


def _clear(db: Any, run_id: str) -> None:
    """Drop a finished run's status and results from the server (read before; a failure is harmless)."""
    db.show_proc_status(run_id=run_id, options={"clear_complete": "true"})
