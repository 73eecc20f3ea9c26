"""An embedded Tansu broker that every client reaches through a TCP proxy (a Kafka outage on demand).

Kafka clients reconnect to the address the broker advertises in its metadata, not to the
bootstrap address, so a proxy in front of a broker only sees all the traffic when the
broker advertises the proxy's port. Tansu takes ``--listener-url`` and
``--advertised-listener-url`` apart, so the broker listens on one port and advertises the
proxy's: :meth:`ProxiedBroker.cut` then takes Kafka away from every client while the
broker keeps its topics, offsets and groups, as a real outage or a partition does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.broker.embedded import EmbeddedBroker, free_port
from support.proxy import OutageProxy


class ProxiedBroker:
    """An :class:`EmbeddedBroker` on a free port behind an :class:`OutageProxy`; clients use :attr:`bootstrap`."""

    def __init__(self, log_path: Path) -> None:
        broker_port = free_port()
        self.proxy = OutageProxy("127.0.0.1", broker_port)
        self.broker = EmbeddedBroker(broker_port, log_path, advertised_port=self.proxy.port)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start(self, timeout: float = 20.0) -> None:
        self.broker.start(timeout)

    def cut(self) -> None:
        """Kafka goes away for every client: connections cut, new ones refused; the broker keeps its state."""
        self.proxy.down()

    def restore(self) -> None:
        self.proxy.up()

    def restart(self) -> None:
        """Stop and start the broker on the same ports: its memory storage starts empty (no topics)."""
        self.broker.stop()
        self.broker.start()

    def stop(self) -> None:
        self.proxy.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedBroker]:
    """A broker of its own for a module of Kafka-outage drills (cutting it must not disturb other tests)."""
    broker = ProxiedBroker(tmp_path_factory.mktemp("proxied-broker") / "broker.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
