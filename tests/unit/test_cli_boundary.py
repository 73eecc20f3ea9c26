"""The CLI boundary: every error a user can meet becomes one line and exit code 2; bugs exit 1."""

from __future__ import annotations

import duckdb
import pytest
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException

from streamscore.cli_boundary import EXIT_BUG, EXIT_ERROR, describe
from streamscore.errors import ConfigError, KafkaError


@pytest.mark.parametrize(("exc", "starts"), [
    (ConfigError("--split must be train or test"), "error (config): --split"),
    (KafkaError("3 message(s) not delivered"), "error (kafka): 3 message(s)"),
    (KafkaException(RdKafkaError(RdKafkaError._TRANSPORT, "Failed to get metadata")),
     "error (kafka): Failed to get metadata"),
    (duckdb.IOException("Could not set lock on file\nsecond line"), "error (database): IOException: Could not set"),
    (PermissionError(13, "Permission denied", "out/report.json"), "error (os):"),
])
def test_user_facing_errors_are_one_line_and_exit_2(exc: BaseException, starts: str) -> None:
    line, code = describe(exc)
    assert code == EXIT_ERROR
    assert line.startswith(starts)
    assert "\n" not in line


def test_a_bug_is_one_line_exit_1_pointing_at_verbose() -> None:
    line, code = describe(ZeroDivisionError("division by zero"))
    assert code == EXIT_BUG
    assert "ZeroDivisionError" in line and "--verbose" in line and "\n" not in line
