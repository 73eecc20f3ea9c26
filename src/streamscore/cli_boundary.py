"""The command-line boundary: an error a user can cause or meet becomes one line, never a traceback.

Our own errors (StreamscoreError), librdkafka's (KafkaException), the database drivers' and
the operating system's print ``error (<reason>): <message>`` on stderr and exit with 2. Anything
else is a bug: one line naming it and exit 1; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable

import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.markup import escape

from streamscore.errors import StreamscoreError

#: driver exception roots by module, checked only when the driver is already imported
DRIVER_ERRORS = {"duckdb": "Error", "psycopg": "Error", "oracledb": "Error", "gpudb": "GPUdbException"}

EXIT_ERROR = 2
EXIT_BUG = 1


def driver_error_classes() -> tuple[type[BaseException], ...]:
    classes: list[type[BaseException]] = []
    for module_name, class_name in DRIVER_ERRORS.items():
        module = sys.modules.get(module_name)
        found = getattr(module, class_name, None) if module is not None else None
        if isinstance(found, type) and issubclass(found, BaseException):
            classes.append(found)
    return tuple(classes)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line shown for ``exc`` and the exit code."""
    if isinstance(exc, StreamscoreError):
        return f"error ({exc.reason}): {exc.message}", EXIT_ERROR
    if isinstance(exc, KafkaException):
        from streamscore.shared.kafka import describe_kafka_error

        return f"error (kafka): {describe_kafka_error(exc)}; is Kafka up and STREAMSCORE_KAFKA_BOOTSTRAP right?", \
            EXIT_ERROR
    if isinstance(exc, driver_error_classes()):
        return f"error (database): {type(exc).__name__}: {first_line(str(exc))}", EXIT_ERROR
    if isinstance(exc, OSError):
        return f"error (os): {exc}", EXIT_ERROR
    return (f"unexpected error (a bug, please report it): {type(exc).__name__}: {first_line(str(exc))}; "
            "rerun with --verbose for the traceback"), EXIT_BUG


def usage_line(exc: BaseException) -> str | None:
    """One line for a command-line usage error (bad option value, unknown option); None for other errors."""
    if not isinstance(exc, typer.TyperException) or not hasattr(exc, "format_message"):
        return None
    context = getattr(exc, "ctx", None)
    hint = f"; see `{context.command_path} --help`" if context is not None else ""
    return f"error (usage): {first_line(exc.format_message())}{hint}"


def run_command_line(app: Callable[..., object], verbose: Callable[[], bool],
                     json_lines: Callable[[], bool] = lambda: False) -> None:
    """Run the typer app; turn any exception into one line on stderr (a JSON line with --log-json) and an exit code."""
    err_console = Console(stderr=True)
    try:
        code = app(standalone_mode=False)  # usage errors come back to us instead of a framed box
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(EXIT_BUG)
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help has been printed
            sys.exit(EXIT_ERROR)
        usage = usage_line(exc)
        line, code = (usage, EXIT_ERROR) if usage is not None else describe(exc)
        if json_lines():
            logging.getLogger("streamscore.cli").error(line, exc_info=exc if verbose() and usage is None else None,
                                                       extra={"event": "command-failed"})
            sys.exit(code)
        if verbose() and usage is None:
            err_console.print(escape("".join(traceback.format_exception(exc))), highlight=False)
        err_console.print(f"[red]{escape(line)}[/]", highlight=False, soft_wrap=True)
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)
