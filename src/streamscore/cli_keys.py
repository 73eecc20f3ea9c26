"""`streamscore keys generate`: an Ed25519 key pair for signing models (kept out of cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_options import settings_from

keys_app = typer.Typer(help="Keys that sign model artifacts (Ed25519).", no_args_is_help=True)
console = Console()

#: `--sign-key FILE` of publish-model and train
SignKey = Annotated[Path | None, typer.Option(
    "--sign-key", dir_okay=False,
    help="sign with this Ed25519 private key (PEM from `streamscore keys generate`); "
         "default STREAMSCORE_MODEL_SIGN_KEY_FILE, else unsigned")]


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="folder for the two PEM files")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing key pair in --out")] = False,
) -> None:
    """Write a new key pair: DIR/model-signing.key.pem (private, mode 0600: keep it where models are
    published) and DIR/model-signing.pub.pem (public: give it to every consumer)."""
    from streamscore.model.keys import generate_key_files

    settings_from()
    files = generate_key_files(out, force=force)
    console.print(f"wrote {files.private} (private, mode 0600) and {files.public} (public); key {files.fingerprint}")
    console.print(f"publish:   streamscore publish-model PATH --sign-key {files.private}")
    console.print(f"consumers: STREAMSCORE_MODEL_PUBLIC_KEY_FILE={files.public} streamscore consume …")
