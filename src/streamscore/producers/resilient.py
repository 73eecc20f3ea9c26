"""A producer that rides out a broker outage without losing a message or hiding one.

- The local queue is bounded (``queue.buffering.max.messages``/``kbytes`` in make_producer):
  when the broker is away, ``send`` blocks instead of memory growing.
- While deliveries are stalled, a warning line every ``report_every_s`` seconds gives the
  count in flight.
- A fatal error (an idempotent producer that lost its producer id: "Unknown Producer Id",
  ``error.fatal()``), or a stall that outlasts ``recreate_after_s`` while the broker answers
  again (a restarted broker that forgot the producer id makes librdkafka retry forever),
  recreates the producer: the old one is purged, the topics are ensured (a restarted
  embedded broker has lost them), and everything not acknowledged is sent again, oldest
  first. A message acknowledged by the old producer's broker but purged before its
  acknowledgement arrived is sent twice: consumers absorb it (idempotent by image id).
- ``drain`` waits for the rest; what is still owed when it gives up is the exact count
  not delivered (:class:`DeliveryTracker`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

from streamscore.errors import KafkaError
from streamscore.producers.delivery import DeliveryTracker
from streamscore.shared.config import Settings
from streamscore.shared.kafka import describe_kafka_error, ensure_topics, existing_topics, make_producer
from streamscore.shared.messages import Headers

log = logging.getLogger(__name__)

ProducerFactory = Callable[..., Producer]

#: a check that ends a wait (Ctrl-C); None waits as long as it takes
Interrupted = Callable[[], bool] | None

#: seconds between two "does the broker answer?" probes while deliveries are stalled
PROBE_EVERY_S = 3.0


def answers(settings: Settings) -> bool:
    """Whether Kafka answers a metadata request within a second."""
    try:
        existing_topics(settings, timeout=1.0)
        return True
    except KafkaError:
        return False


def topics_ensured(settings: Settings) -> None:
    """Create the topics again (a restarted embedded broker forgets them); a failure is only logged."""
    try:
        ensure_topics(settings, timeout=5.0)
    except KafkaError as exc:
        log.warning("topics not ensured yet (%s); re-sending anyway", exc.message)


class ResilientProducer:
    """Sends to one topic through a replaceable librdkafka producer; see the module docstring."""

    def __init__(self, settings: Settings, topic: str, *, tracker: DeliveryTracker | None = None,
                 producer: Producer | None = None, factory: ProducerFactory = make_producer,
                 prepare_topics: Callable[[Settings], object] | None = None,
                 broker_answers: Callable[[Settings], bool] | None = None,
                 report_every_s: float = 5.0, recreate_after_s: float = 10.0, **overrides: Any) -> None:
        self.settings = settings
        self.topic = topic
        self.tracker = tracker if tracker is not None else DeliveryTracker()
        self.report_every_s = report_every_s
        self.recreate_after_s = recreate_after_s
        self._factory = factory
        self._prepare_topics = prepare_topics or topics_ensured
        self._probe = broker_answers or answers
        self._overrides = overrides
        self._producer = producer if producer is not None else self._new_producer()
        self._last_report = 0.0
        self._last_probe = 0.0
        self._backlog: deque[int] = deque()
        self._retired: list[Producer] = []
        self.recreated = 0

    def _new_producer(self) -> Producer:
        return self._factory(self.settings, error_cb=self.tracker.on_error, **self._overrides)

    def send(self, key: bytes, value: bytes, headers: Headers, interrupted: Interrupted = None) -> bool:
        """Hand one message to librdkafka, waiting while its queue is full; False when ``interrupted()`` ends the wait.

        A message whose wait was interrupted stays owed: ``service``/``drain`` send it later.
        """
        self._backlog.append(self.tracker.track(key, value, headers))
        return self._pump(interrupted)

    def service(self, timeout: float = 0.0, interrupted: Interrupted = None) -> None:
        """Serve delivery reports; re-send, recreate and report stalls as needed."""
        self._tick(timeout)
        self._pump(interrupted)

    def _pump(self, interrupted: Interrupted) -> bool:
        """Produce the backlog (new messages and re-sends) in order; False if ``interrupted()`` stopped it."""
        while self._backlog:
            seq = self._backlog[0]
            message = self.tracker.pending.get(seq)
            if message is None:  # settled meanwhile
                self._backlog.popleft()
                continue
            try:
                self._producer.produce(self.topic, value=message.value, key=message.key, headers=message.headers,
                                       on_delivery=self.tracker.callback(seq))
                self._backlog.popleft()
                self._producer.poll(0)
            except BufferError:  # local queue full (broker slow or away): let deliveries drain
                if interrupted is not None and interrupted():
                    return False
                self._tick(0.1)
            except Exception as exc:  # a producer in a fatal state refuses every produce(): recreate it
                self.tracker.fatal = self.tracker.fatal or str(exc)
                if interrupted is not None and interrupted():
                    return False
                self._tick(0.1)
        return True

    def _tick(self, timeout: float) -> None:
        """Poll; recreate the producer when it is stuck; queue re-sends; report a stall."""
        try:
            self._producer.poll(timeout)
        except KafkaException as exc:  # poll raises a fatal error (e.g. "Unknown Producer Id")
            self.tracker.fatal = self.tracker.fatal or describe_kafka_error(exc)
        stalled = self.tracker.stalled_for()
        if self.tracker.fatal is not None:
            self._recreate(f"fatal producer error: {self.tracker.fatal}")
            stalled = 0.0
        elif stalled >= self.recreate_after_s and self._broker_answers():
            self._recreate(f"no delivery for {stalled:.0f}s although the broker answers")
            stalled = 0.0
        else:
            self._backlog.extend(seq for seq, _message in self.tracker.to_resend())
        if stalled >= self.report_every_s and self.tracker.clock() - self._last_report >= self.report_every_s:
            self._last_report = self.tracker.clock()
            log.warning("%s image(s) in flight to %s, none delivered for %.0fs; is Kafka up at %s? "
                        "(riding it out; Ctrl-C stops and reports the count not delivered)",
                        f"{self.tracker.in_flight:,}", self.topic, stalled, self.settings.kafka_bootstrap,
                        extra={"event": "producer-stalled", "in_flight": self.tracker.in_flight})

    def _broker_answers(self) -> bool:
        now = self.tracker.clock()
        if now - self._last_probe < PROBE_EVERY_S:
            return False  # the probe blocks for up to a second or two while the broker is away
        self._last_probe = now
        return self._probe(self.settings)

    def _recreate(self, why: str) -> None:
        log.warning("recreating the Kafka producer (%s); re-sending %s image(s) not acknowledged",
                    why, f"{self.tracker.in_flight:,}", extra={"event": "producer-recreated"})
        old = self._producer
        with contextlib.suppress(KafkaException):  # a fatal producer raises its error again
            old.purge(in_queue=True, in_flight=True, blocking=False)
            old.flush(1.0)  # serves the purged messages' reports
        self._retired.append(old)  # kept: destroying it could block; its late error reports are ignored
        self.tracker.generation += 1
        self.tracker.fatal = None
        self._prepare_topics(self.settings)
        self._producer = self._new_producer()
        self.recreated += 1
        self.tracker.last_progress = self.tracker.clock()  # a fresh start for the stall clock
        resend = self.tracker.to_resend(everything=True)
        queued = set(self._backlog)  # never handed to the old producer: not a re-send
        self.tracker.resent += sum(1 for seq, _message in resend if seq not in queued)
        self._backlog = deque(seq for seq, _message in resend)

    def drain(self, should_end: Callable[[], bool] = lambda: False) -> int:
        """Wait for every delivery, riding out outages, until ``should_end()``; returns how many are still owed."""
        while self.tracker.in_flight and not should_end():
            self.service(0.2, should_end)
        return self.tracker.in_flight

    def close(self) -> None:
        """Drop what librdkafka still holds (counted as not delivered by the tracker)."""
        with contextlib.suppress(KafkaException):
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.poll(0)
