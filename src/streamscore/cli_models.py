"""`streamscore models …`: the model lifecycle on the models topic (list, promote, withdraw, rollback).

Each command reads the models topic whole, applies one transition and appends the new lifecycle
snapshot; consumers switch between two batches (docs/operations.md, "Model lifecycle").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streamscore.cli_options import Bootstrap, reachable, settings_from
from streamscore.model.lifecycle import Lifecycle

models_app = typer.Typer(help="Model lifecycle: list versions and roles, promote, withdraw, roll back.",
                         no_args_is_help=True)
console = Console()

Name = Annotated[str, typer.Argument(help="model name, e.g. mlp")]
Version = Annotated[int, typer.Argument(min=1, help="model version")]


def lifecycle_table(state: Lifecycle) -> Table:
    table = Table(title=f"{state.name} on the models topic (revision {state.revision}: {state.command or '-'})")
    for column in ("name", "version", "role", "state", "published at (UTC)", "key", "weights sha256"):
        table.add_column(column)
    for entry in state.versions:
        at = dt.datetime.fromtimestamp(entry.published_at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") \
            if entry.published_at else "-"
        champion = " (champion)" if entry.version == state.champion else ""
        table.add_row(state.name, str(entry.version), entry.role + champion, entry.state, at,
                      entry.key_id or "unsigned", entry.sha256[:12])
    return table


def _apply(name: str, bootstrap: str | None, command: Callable[[Lifecycle], Lifecycle]) -> None:
    """Apply ``command`` to the model's state on the topic (once Kafka answers) and say what serves next."""
    from streamscore.producers.lifecycle import run_command

    state = run_command(reachable(settings_from(kafka_bootstrap=bootstrap)), name, command)
    console.print(f"{state.command}: consumers switch to {state.serving_set()} between two batches")


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument(help="model name [STREAMSCORE_MODEL_NAME]")] = None,
                bootstrap: Bootstrap = None) -> None:
    """Versions of a model with their role, state, publication time and signing key."""
    from streamscore.producers.lifecycle import read_topic

    settings = reachable(settings_from(kafka_bootstrap=bootstrap))
    state = read_topic(settings, name or settings.model_name).lifecycle
    if not state.versions:
        console.print(f"no versions of {name or settings.model_name!r} on {settings.models_topic}")
        raise typer.Exit(1)
    console.print(lifecycle_table(state))
    console.print(f"in force: {state.serving_set() or 'nothing'}")


@models_app.command("promote")
def models_promote(name: Name, version: Version, bootstrap: Bootstrap = None) -> None:
    """Make VERSION the champion (served alone); the champion before it can be rolled back to."""
    _apply(name, bootstrap, lambda s: s.promote(version))


@models_app.command("withdraw")
def models_withdraw(name: Name, version: Version, bootstrap: Bootstrap = None) -> None:
    """Stop serving or shadowing VERSION (a withdrawn champion hands over to the one before it)."""
    _apply(name, bootstrap, lambda s: s.withdraw(version))


@models_app.command("rollback")
def models_rollback(name: Name, bootstrap: Bootstrap = None) -> None:
    """The previous champion serves again (the current one is marked rolled-back)."""
    _apply(name, bootstrap, lambda s: s.rollback("streamscore models rollback"))
