"""`streamscore produce` across a restart of the embedded broker: it rides the outage out and accounts for every image.

The restarted broker (memory storage) has lost its topics and the idempotent producer's id;
the producer reports the stall while it lasts, recreates itself, creates the topics again and
re-sends what was not acknowledged. Its summary adds up: sent = delivered + failed + not delivered.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer

from streamscore.broker import EmbeddedBroker
from streamscore.shared.config import Settings, load_settings
from streamscore.shared.kafka import assign_from_beginning, make_consumer
from support.drill import wait_until

pytestmark = pytest.mark.slow


def waited_for(what: str, log: list[str]) -> Callable[[], str]:
    """``what``, with the producer's last lines when the wait times out."""
    return lambda: what + "; producer said:\n" + "".join(line for line in log[-15:] if "rdkafka" not in line)


class TopicCounter:
    """Counts the messages of a topic on the current broker (a new reader after a restart)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: Consumer | None = None
        self.count = 0

    def reset(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
        self.consumer, self.count = None, 0

    def at_least(self, wanted: int) -> bool:
        if self.consumer is None:
            self.consumer = make_consumer(self.settings, f"counter-{uuid.uuid4().hex[:8]}")
            if not assign_from_beginning(self.consumer, self.settings.images_topic):
                self.reset()  # not created yet (the restarted broker starts empty): ask again
                time.sleep(0.5)
                return False
        self.count += sum(1 for m in self.consumer.consume(1000, 0.5) if not m.error())
        return self.count >= wanted


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test only: it is stopped and started again on the same port."""
    with EmbeddedBroker() as running:
        yield running


def test_produce_rides_out_a_broker_restart_and_accounts_for_every_image(own_broker: EmbeddedBroker) -> None:
    settings = load_settings(kafka_bootstrap=own_broker.bootstrap, images_topic=f"t.{uuid.uuid4().hex[:8]}.images")
    env = os.environ | {"STREAMSCORE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                        "STREAMSCORE_IMAGES_TOPIC": settings.images_topic, "COLUMNS": "250"}
    producer = subprocess.Popen([sys.executable, "-m", "streamscore.cli", "produce", "--loop", "--rate", "200"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    output: list[str] = []
    # one reader thread per pipe, the only readers: communicate() would also read (and then close) stderr
    readers = [threading.Thread(target=lambda: errors.extend(producer.stderr or []), daemon=True),
               threading.Thread(target=lambda: output.extend(producer.stdout or []), daemon=True)]
    for reader in readers:
        reader.start()
    counter = TopicCounter(settings)
    try:
        wait_until(lambda: counter.at_least(200), 60, waited_for("the first 200 images on the broker", errors))
        counter.reset()
        own_broker.stop()
        wait_until(lambda: any("in flight" in line for line in errors), 30,
                   waited_for("the producer to report the stall", errors))
        own_broker.start()
        wait_until(lambda: counter.at_least(200), 90, waited_for("200 images on the restarted broker", errors))
    finally:
        counter.reset()
        producer.send_signal(signal.SIGINT)
        producer.wait(timeout=60)
        for reader in readers:
            reader.join(10)
        for pipe in (producer.stdout, producer.stderr):
            if pipe is not None:
                pipe.close()
    out = "".join(output)
    assert producer.returncode == 0, "".join(errors[-20:])
    assert "Traceback" not in "".join(errors)
    found = re.search(r"sent ([\d,]+), delivered ([\d,]+), failed ([\d,]+), not delivered ([\d,]+)", out)
    assert found, out
    sent, delivered, failed, not_delivered = (int(g.replace(",", "")) for g in found.groups())
    assert sent == delivered + failed + not_delivered
    assert failed == 0 and not_delivered == 0
    assert delivered >= 400
    assert "re-sent" in out, "the images in flight during the outage were sent again"
