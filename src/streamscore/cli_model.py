"""`streamscore export-onnx`: a model artifact as an ONNX file (kept out of cli.py, which holds the others)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_options import settings_from

console = Console()


def export_onnx(
    artifact: Annotated[Path, typer.Argument(help="model artifact (.npz with manifest)", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Argument(help="the ONNX file to write, e.g. mlp-v2.onnx")],
) -> None:
    """Export a model artifact as ONNX (input "pixels" float32 n×784 raw 0..255; outputs
    "probabilities" n×10 and "label"), e.g. for onnxruntime or Oracle 23ai's in-database scoring."""
    from streamscore.model.artifact import load_artifact
    from streamscore.model.onnx_export import write_onnx

    settings_from()
    model = load_artifact(artifact)
    size = write_onnx(model, out)
    console.print(f"wrote {out}: {model.name} v{model.version} as ONNX ({size:,} bytes, sha256 of the "
                  f"weights {model.sha256[:12]}…)")
