"""`streamscore train`: TensorFlow training (seed, dense, cnn), in a database, or from a database's images.

Kept out of cli.py, which holds the other commands.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_keys import SignKey
from streamscore.cli_options import BackendOpt, Bootstrap, backend_was_chosen, positive, settings_from
from streamscore.errors import ConfigError

console = Console()
err_console = Console(stderr=True)


def train(
    out: Annotated[Path, typer.Option(help="where to write the artifact")] = Path("out/models/mlp.npz"),
    version: Annotated[int | None, typer.Option(
        min=1, help="model version (must be newer than the one serving; default: in the database the next "
                    "after the installed ones, else 1)")] = None,
    arch: Annotated[str, typer.Option(
        help="seed (784-100-10 sigmoid, SGD), dense (784-256-128-10 ReLU, Adam) or cnn (two 3x3 conv + "
             "pooling, dense head, Adam)")] = "seed",
    steps: Annotated[int, typer.Option(min=1, help="SGD steps of --batch images (--arch seed)")] = 30_000,
    epochs: Annotated[int | None, typer.Option(
        min=1, help="epochs (--arch dense: 12, cnn: 3 by default)")] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="batch size (seed: 100, dense/cnn: 128)")] = None,
    learning_rate: Annotated[float, typer.Option(callback=positive, help="SGD learning rate (--arch seed)")] = 0.5,
    hidden: Annotated[str, typer.Option(help="hidden layer sizes, comma separated (--arch seed)")] = "100",
    seed: Annotated[int, typer.Option(help="random seed")] = 2016,
    publish: Annotated[bool, typer.Option(
        help="publish the artifact to the models topic (always with --backend kinetica://…)")] = False,
    backend: BackendOpt = None,
    bootstrap: Bootstrap = None,
    in_database: Annotated[bool, typer.Option(
        "--in-database", help="train inside the configured backend (one that implements training: kinetica)")] = False,
    from_backend: Annotated[str | None, typer.Option(
        "--from-backend", metavar="URL",
        help="train on the labeled images stored in this database (duckdb:///…, postgresql://…)")] = None,
    holdout: Annotated[float, typer.Option(
        min=0.01, max=0.9, help="--from-backend: share of the stored images held out for validation")] = 0.1,
    floor: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="--from-backend: the lowest validation accuracy that may be published")] = 0.97,
    sign_key: SignKey = None,
) -> None:
    """Train a network with TensorFlow (--arch seed|dense|cnn) on the MNIST training set.

    With --from-backend URL it trains on the labeled images that database stored (labels from the
    image headers), holds out --holdout of them, and publishes (with --publish) only a model whose
    validation accuracy reaches --floor. With --in-database (or --backend naming a backend that
    trains, e.g. kinetica://…) the training runs inside the database (Kinetica: a numpy UDF) and the
    new model is published to the models topic.
    """
    from rich.progress import Progress

    from streamscore.model.keras_nets import check_arch
    from streamscore.model.trainer import TrainConfig
    from streamscore.model.trainer import train as run_training
    from streamscore.shared.mnist import load_split

    settings = settings_from(kafka_bootstrap=bootstrap, backend=backend)
    from streamscore.producers.models import signing_key

    key = signing_key(settings, sign_key) if publish or in_database else None  # fails before training
    sizes = tuple(int(h) for h in hidden.split(",") if h.strip())
    config = TrainConfig(settings.model_name, 1 if version is None else version, sizes, "sigmoid", steps,
                         batch or (100 if arch == "seed" else 128), learning_rate, seed, check_arch(arch),
                         epochs or 0)
    if from_backend is not None:
        if version is None:
            raise ConfigError("--from-backend needs --version N (newer than the version serving)")
        from streamscore.ops.retrain import train_from_backend

        result = train_from_backend(from_backend, config, holdout=holdout, floor=floor, say=console.print)
        artifact = result.artifact
    else:
        from streamscore.backends import open_configured_backend

        # a chosen backend (--backend before or after `train`, STREAMSCORE_BACKEND) that trains means --in-database
        database = open_configured_backend(settings) if in_database or backend_was_chosen(backend) else None
        in_database = database is not None and (in_database or "train" in database.implements)
        if database is not None and in_database:
            database.require("train")
            if arch != "seed":
                raise ConfigError(f"training inside {database.name} runs the seed recipe only, not --arch {arch}; "
                                  "train it here (without --backend/--in-database) and --publish it")
            with database:  # version 0: the backend trains the next version (installed max + 1)
                artifact = database.train_model(
                    config if version is not None else dataclasses.replace(config, version=0), settings.mnist_dir)
        else:
            train_split, test_split = load_split("train", settings.mnist_dir), load_split("test", settings.mnist_dir)
            with Progress(console=err_console) as progress:
                task = progress.add_task(f"training {arch}", total=steps if arch == "seed" else None)
                artifact = run_training(config, train_split, test_split,
                                        progress=lambda done, total: progress.update(task, completed=done,
                                                                                     total=total))
    artifact.save(out)
    measured_on = "validation" if from_backend is not None else "test"
    console.print(f"wrote {out}: {artifact.name} v{artifact.version} ({arch}), {measured_on} accuracy "
                  f"{artifact.manifest['metrics'].get('test_accuracy')}")
    if from_backend is not None and not result.passed:
        raise ConfigError(f"not published: validation accuracy {result.accuracy:.4f} is below the floor "
                          f"{floor:.4f} (--floor); the serving model stays")
    if publish or in_database:  # a model trained in the database goes to every consumer
        from streamscore.producers.lifecycle import publish_with_role
        from streamscore.shared.kafka import ensure_topics

        ensure_topics(settings)
        # as champion, as `publish-model` does: the lifecycle snapshot stays the model's last record (a plain
        # record under the model's key would replace it at compaction); refused in one line when not newer
        state = publish_with_role(settings, artifact, "champion", sign_key=key)
        console.print(f"published v{artifact.version} to {settings.models_topic} as champion; in force: "
                      f"{state.serving_set()}")
