"""An embedded Tansu broker that every client reaches through a TCP proxy (a Kafka outage on demand).

Kafka clients reconnect to the address the broker advertises in its metadata, not to the
bootstrap address, so a proxy in front of a broker only sees all the traffic when the
broker advertises the proxy's port. Tansu takes ``--listener-url`` and
``--advertised-listener-url`` apart, so the broker listens on one port and advertises the
proxy's: :meth:`ProxiedBroker.cut` then takes Kafka away from every client while the
broker keeps its topics, offsets and groups, as a real outage or a partition does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.broker.embedded import broker_binary, free_port
from support.proxy import OutageProxy


class ProxiedBroker:
    """Tansu on a free port behind an :class:`OutageProxy`; clients use :attr:`bootstrap`."""

    def __init__(self, log_path: Path) -> None:
        self.broker_port = free_port()
        self.proxy = OutageProxy("127.0.0.1", self.broker_port)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    def start(self, timeout: float = 20.0) -> None:
        command = [broker_binary(), "broker",
                   "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
                   "--advertised-listener-url", f"tcp://127.0.0.1:{self.proxy.port}",
                   "--storage-engine", "memory://tansu/"]
        env = os.environ | {"RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                             start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}: {self.log_path.read_text()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.broker_port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"tansu did not listen on {self.broker_port} within {timeout:.0f}s")

    def cut(self) -> None:
        """Kafka goes away for every client: connections cut, new ones refused; the broker keeps its state."""
        self.proxy.down()

    def restore(self) -> None:
        self.proxy.up()

    def restart(self) -> None:
        """Stop and start the broker on the same ports: its memory storage starts empty (no topics)."""
        self._stop_process()
        self.start()

    def stop(self) -> None:
        self.proxy.close()
        self._stop_process()

    def _stop_process(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)  # at once (SIGTERM waits for clients to disconnect)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


@pytest.fixture(scope="module")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedBroker]:
    """A broker of its own for a module of Kafka-outage drills (cutting it must not disturb other tests)."""
    broker = ProxiedBroker(tmp_path_factory.mktemp("proxied-broker") / "broker.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
