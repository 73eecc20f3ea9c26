"""Delivery bookkeeping of the image producer: every message sent is acknowledged, failed or still owed.

Each message gets a sequence number when it is handed to librdkafka and stays in
``pending`` until the broker acknowledges it. A delivery error that a new attempt can
fix (broker down, timed out, purged when the producer is recreated, a fatal idempotence
error) marks it for re-sending; an error that no attempt can fix (too large, not
authorized) counts it as failed. So ``sent == delivered + failed + len(pending)`` holds
at every moment, and what is pending when the producer stops is the exact count not
delivered.

The callbacks run inside librdkafka's poll: they never raise (an exception there surfaces
as a SystemError far from its cause); they only record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError

from streamscore.shared.messages import Headers

#: delivery errors that no new attempt can fix: the message is counted as failed
PERMANENT_ERRORS = frozenset({
    RdKafkaError.MSG_SIZE_TOO_LARGE, RdKafkaError.INVALID_MSG,
    RdKafkaError.INVALID_RECORD, RdKafkaError.RECORD_LIST_TOO_LARGE,
    RdKafkaError.TOPIC_AUTHORIZATION_FAILED, RdKafkaError.CLUSTER_AUTHORIZATION_FAILED,
    RdKafkaError.TOPIC_EXCEPTION, RdKafkaError.INVALID_REQUIRED_ACKS, RdKafkaError._INVALID_ARG,
})


@dataclass
class PendingMessage:
    key: bytes
    value: bytes
    headers: Headers
    resend: bool = False


@dataclass
class DeliveryTracker:
    """Counts and the messages not yet acknowledged, keyed by sequence number (image ids repeat with --loop)."""

    clock: Callable[[], float] = time.monotonic
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    resent: int = 0
    pending: dict[int, PendingMessage] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None
    last_progress: float = 0.0
    generation: int = 0  # bumped when the producer is replaced
    _next_seq: int = 0
    _marked: list[int] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    @property
    def not_delivered(self) -> int:
        return len(self.pending)

    def track(self, key: bytes, value: bytes, headers: Headers) -> int:
        """Register a new message; returns its sequence number (for :meth:`callback`)."""
        if not self.pending:
            self.last_progress = self.clock()  # the stall clock starts with the first message in flight
        seq = self._next_seq
        self._next_seq += 1
        self.pending[seq] = PendingMessage(key, value, headers)
        self.sent += 1
        return seq

    def callback(self, seq: int) -> Callable[[RdKafkaError | None, Any], None]:
        generation = self.generation

        def on_delivery(error: RdKafkaError | None, _message: Any) -> None:
            self.on_delivery(seq, error, generation)

        return on_delivery

    def on_delivery(self, seq: int, error: RdKafkaError | None, generation: int | None = None) -> None:
        """Settle ``seq``; an error from a replaced producer (older ``generation``) is ignored: it was re-sent."""
        try:
            message = self.pending.get(seq)
            if message is None:
                return  # a report for a copy already settled
            if error is not None and generation is not None and generation != self.generation:
                return
            if error is None:
                del self.pending[seq]
                self.delivered += 1
                self.last_progress = self.clock()
            elif error.code() in PERMANENT_ERRORS:
                del self.pending[seq]
                self.failed += 1
                self._remember(error)
            else:
                if not message.resend:
                    message.resend = True
                    self._marked.append(seq)
                if error.fatal():
                    self.fatal = self.fatal or str(error)
        except Exception as exc:  # never raise inside librdkafka's callback
            self._remember(exc)

    def on_error(self, error: RdKafkaError) -> None:
        """librdkafka's ``error_cb``: remember a fatal error (the producer must be recreated)."""
        try:
            if error.fatal():
                self.fatal = self.fatal or str(error)
        except Exception as exc:  # never raise inside librdkafka's callback
            self._remember(exc)

    def to_resend(self, everything: bool = False) -> list[tuple[int, PendingMessage]]:
        """Messages to produce again, oldest first: those marked, or every pending one (new producer)."""
        if not everything and not self._marked:
            return []  # the common case, once per message sent: keep it cheap
        seqs = sorted(self.pending) if everything else sorted(s for s in set(self._marked) if s in self.pending)
        self._marked.clear()
        chosen = [(seq, self.pending[seq]) for seq in seqs]
        for _seq, message in chosen:
            message.resend = False
        return chosen

    def stalled_for(self) -> float:
        """Seconds since the last delivery while messages are in flight; 0 when nothing is owed."""
        return self.clock() - self.last_progress if self.pending else 0.0

    def _remember(self, error: object) -> None:
        if len(self.errors) < 10:
            self.errors.append(str(error))
