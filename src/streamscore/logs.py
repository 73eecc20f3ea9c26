"""Logging setup: rich console logs for people, JSON lines for machines (--log-json).

Log records that mark a state change carry a structured ``event`` (see :data:`EVENTS`),
passed as ``extra=event("assigned", partitions=[0, 1])``. The JSON formatter writes it
as ``"event": "assigned"`` with its fields under ``"data"``: drills, bench and status
match events, never the human wording of a message.

librdkafka repeats a connection error every few hundred milliseconds while a broker is
away; :class:`RepeatFilter` lets the first one through and then one summary per window.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

#: the events the scorer logs (the interface for drills, bench and operators)
EVENTS = frozenset({
    "subscribed", "assigned", "revoked", "paused", "resumed", "retry", "model-switched",
    "kafka-unreachable", "kafka-restored", "resubscribed", "fatal", "fault-point", "fault-hold", "stalled", "moving",
    "worker-started", "worker-restarted", "waiting-for-model", "models-topic-empty", "models-topic-reset",
    "model-rejected", "model-install-postponed",
    # model lifecycle (issue 12)
    "lifecycle-applied", "lifecycle-waiting", "auto-rollback",
})


def event(name: str, **fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call that marks event ``name`` (one of :data:`EVENTS`)."""
    if name not in EVENTS:
        raise ValueError(f"unknown log event {name!r}; add it to streamscore.logs.EVENTS")
    return {"event": name, "event_data": fields}


def logged_events(log_path: Path, *names: str) -> list[tuple[float, str, dict[str, Any]]]:
    """(epoch seconds, event, data) of the JSON log lines (--log-json) marking one of ``names``, in order."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            record = json.loads(line)
            if record.get("event") in names:
                stamp = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
                found.append((stamp, str(record["event"]), dict(record.get("data") or {})))
    return found


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        name = getattr(record, "event", None)
        if name:
            body["event"] = name
            data = getattr(record, "event_data", None)
            if data:
                body["data"] = data
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class RepeatFilter(logging.Filter):
    """Pass the first of a run of similar records, then one summary every ``window_s`` seconds.

    Records are similar when their messages are equal once digits are masked (librdkafka's
    "after 3ms in state CONNECT" differs on every attempt). The summary is the next similar
    record after the window, prefixed with how many were held back.
    """

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        #: shape → (time the last record passed, records held back since)
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        shape = re.sub(r"\d+", "#", f"{record.levelno}:{record.getMessage()}")
        now = self.clock()
        with self._lock:
            passed_at, held = self._seen.get(shape, (None, 0))
            if passed_at is not None and now - passed_at < self.window_s:
                self._seen[shape] = (passed_at, held + 1)
                return False
            self._seen[shape] = (now, 0)
            if len(self._seen) > 1000:  # a bounded memory of shapes
                self._seen = {shape: (now, 0)}
        if held:
            record.msg = f"{record.getMessage()} ({held} similar message(s) in the last {self.window_s:.0f}s)"
            record.args = None
        return True


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    root.addHandler(handler)
    root.setLevel(level.upper())
