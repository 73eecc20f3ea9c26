"""Structured log events and the filter that rate-limits librdkafka's repeated errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from streamscore.logs import JsonFormatter, RepeatFilter, event, logged_events


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("streamscore.test", logging.WARNING, __file__, 1, message, None, None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_json_lines_carry_the_event_and_its_data() -> None:
    line = json.loads(JsonFormatter().format(record("assigned 0@5", **event("assigned", partitions=[0]))))
    assert line["event"] == "assigned" and line["data"] == {"partitions": [0]}
    assert line["message"] == "assigned 0@5" and line["level"] == "warning"
    plain = json.loads(JsonFormatter().format(record("no event here")))
    assert "event" not in plain and "data" not in plain


def test_bench_and_drills_read_events_not_wording(tmp_path: Path) -> None:
    log = tmp_path / "consumer.log"
    formatter = JsonFormatter()
    log.write_text("\n".join([
        "not json: \"event\": \"assigned\"",
        formatter.format(record("partitions assigned")),  # the wording alone is not the event
        formatter.format(record("got 3", **event("assigned", partitions=[3]))),
        formatter.format(record("lost 3", **event("revoked", partitions=[3]))),
    ]))
    found = logged_events(log, "assigned", "revoked")
    assert [(name, data) for _, name, data in found] == [("assigned", {"partitions": [3]}),
                                                         ("revoked", {"partitions": [3]})]
    assert all(stamp > 1_600_000_000 for stamp, _, _ in found)
    assert logged_events(log, "paused") == []


def test_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log event 'asigned'"):
        event("asigned")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_records_pass_once_then_as_one_summary_per_window() -> None:
    clock = Clock()
    limiter = RepeatFilter(window_s=10, clock=clock)
    text = "127.0.0.1:9092/1: Connect failed: Connection refused (after {}ms in state CONNECT)"
    assert limiter.filter(record(text.format(1)))
    passed = []
    for n in range(30):
        clock.now += 0.5
        passed.append(limiter.filter(first := record(text.format(n))))
        if passed[-1]:
            summary = first.getMessage()
    assert passed.count(True) == 1  # after 10 s: the summary of the 19 held back
    assert summary.endswith("(19 similar message(s) in the last 10s)")
    assert limiter.filter(record("a different line"))
