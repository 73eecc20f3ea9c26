"""Options shared by the `streamscore` commands: one definition each, validated at the boundary.

The global options (``streamscore --bootstrap … --backend … --log-json --verbose COMMAND``)
are defined once here; every command that takes one of them also accepts it after its own
name (``streamscore consume --backend …``), and a value given there wins. An option name
means the same in every command.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from streamscore.logs import setup_logging
from streamscore.shared.config import Settings, load_settings

log = logging.getLogger("streamscore")


def positive(value: float | None) -> float | None:
    """Typer callback: a number that must be greater than 0 (rates, timeouts)."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be greater than 0, got {value:g}")
    return value


BOOTSTRAP_HELP = "Kafka bootstrap servers [STREAMSCORE_KAFKA_BOOTSTRAP]"
BACKEND_HELP = "duckdb:///path.db | postgresql://… | oracle://… | kinetica://… [STREAMSCORE_BACKEND]"
LOG_JSON_HELP = "structured JSON logs on stderr (also in every --workers process) [STREAMSCORE_LOG_JSON]"

Bootstrap = Annotated[str | None, typer.Option("--bootstrap", help=BOOTSTRAP_HELP)]
BackendOpt = Annotated[str | None, typer.Option("--backend", help=BACKEND_HELP)]
Group = Annotated[str | None, typer.Option("--group", help="consumer group [STREAMSCORE_GROUP]")]
LogJson = Annotated[bool, typer.Option("--log-json", help=LOG_JSON_HELP)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging (and tracebacks of unexpected errors)")]


@dataclass
class GlobalOptions:
    """What was given before the command name; reset by the app callback on every invocation."""

    bootstrap: str | None = None
    backend: str | None = None
    log_json: bool = False
    verbose: bool = False


GLOBALS = GlobalOptions()


def set_globals(bootstrap: str | None, backend: str | None, log_json: bool, verbose: bool) -> None:
    GLOBALS.bootstrap, GLOBALS.backend, GLOBALS.log_json, GLOBALS.verbose = bootstrap, backend, log_json, verbose


def global_options(bootstrap: Bootstrap = None, backend: BackendOpt = None, log_json: LogJson = False,
                   verbose: Verbose = False) -> None:
    """Stream MNIST images through Kafka, score them inside a database, hot-swap models over Kafka.

    The options here apply to every command; a command's own --bootstrap/--backend win.
    """
    set_globals(bootstrap, backend, log_json, verbose)


def settings_from(log_json: bool = False, verbose: bool = False, **overrides: Any) -> Settings:
    """Settings from env/.env < global options < this command's options; logging set up to match."""
    if overrides.get("kafka_bootstrap") is None:
        overrides["kafka_bootstrap"] = GLOBALS.bootstrap
    if overrides.get("backend") is None:
        overrides["backend"] = GLOBALS.backend
    if log_json or GLOBALS.log_json:
        overrides["log_json"] = True  # carried by the settings, so --workers children log JSON too
    settings = load_settings(**overrides)
    GLOBALS.log_json = settings.log_json  # the boundary reports an error as a JSON line too
    setup_logging("DEBUG" if verbose or GLOBALS.verbose else "INFO", json_lines=settings.log_json)
    return settings


def reachable(settings: Settings) -> Settings:
    """``settings``, once Kafka answers (else one KafkaError line, within STREAMSCORE_KAFKA_TIMEOUT_S): a
    command checks before its clients start, whose own connection errors would be logged first."""
    from streamscore.shared.kafka import existing_topics

    existing_topics(settings)
    return settings


def bootstrap_given(bootstrap_flag: str | None) -> bool:
    """Whether --bootstrap was given on the command line (before or after the command name)."""
    return bootstrap_flag is not None or GLOBALS.bootstrap is not None


def verbose_requested() -> bool:
    return GLOBALS.verbose


def log_json_requested() -> bool:
    return GLOBALS.log_json


def backend_was_chosen(backend_flag: str | None) -> bool:
    """Whether the backend came from a flag, STREAMSCORE_BACKEND or .env (not the built-in default)."""
    return backend_flag is not None or GLOBALS.backend is not None or "backend" in Settings().model_fields_set


def consumer_start_lines(settings: Settings, backend_flag: str | None) -> list[str]:
    """What `consume` says at start: the backend (password masked) and the group, and whether it is the default."""
    from streamscore.backends.url import mask_url

    lines = [f"consuming {settings.images_topic} as group {settings.group} into {mask_url(settings.backend_url)}"]
    if not backend_was_chosen(backend_flag):
        lines.append("no --backend and no STREAMSCORE_BACKEND: using the default, a DuckDB file in the current "
                     "folder; each backend needs its own consumer group (--group), or the consumers split the "
                     "partitions between backends")
    return lines


def stop_on_signals(force: threading.Event | None = None) -> threading.Event:
    """SIGINT/SIGTERM set the event: the loop finishes what is in hand, then stops.

    A second signal sets ``force`` when given (the caller stops waiting, never raising inside
    a librdkafka callback); without it, a second signal raises KeyboardInterrupt.
    """
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            if force is None:
                raise KeyboardInterrupt
            force.set()
            return
        log.info("%s received: finishing what is in hand, then stopping (again to force)",
                 signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
