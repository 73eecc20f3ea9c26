"""`streamscore consume --workers N`: N consumer processes of one group on this machine.

Each worker is a plain ``streamscore consume`` child process with its own database
connection and Kafka consumer; the group splits the partitions among them (and
among the consumers of the same group on other machines). The settings resolved
here reach the children as STREAMSCORE_* variables; worker i serves metrics on
``metrics_port + i``.

Supervision: SIGINT/SIGTERM are passed on and every worker finishes its batch. A
worker that exits with an error (a permanent database error, bad settings) stops
the others and its exit code is returned, because its siblings would hit the
same error. A worker killed by a signal (OOM killer, SIGKILL) is restarted, at
most ``MAX_RESTARTS`` times a minute; it resumes from the stored offsets.

DuckDB allows one writing process per database file (``concurrent_writers`` is
False), so N > 1 is refused there with the reason; scale out with PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence

from streamscore.backends import BackendURL, resolve_backend
from streamscore.errors import ConfigError
from streamscore.logs import event
from streamscore.shared.config import Settings

log = logging.getLogger(__name__)

MAX_RESTARTS = 5


def check_scale_out(backend_url: str, workers: int) -> None:
    """Refuse N > 1 workers on a backend that allows one writing process (DuckDB)."""
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    backend = resolve_backend(BackendURL.parse(backend_url).scheme)
    if workers > 1 and not backend.concurrent_writers:
        raise ConfigError(
            f"--workers {workers}: the {backend.name} backend allows one writing process per database "
            "(DuckDB locks its file), so more consumer processes cannot share it. Scale out with a "
            "backend that takes concurrent writers (--backend postgresql://…); with DuckDB run one "
            "consumer per file. A second `streamscore consume` on the same DuckDB file waits for the "
            "lock and takes over when the first one stops (a standby, not scale-out)."
        )


def worker_env(settings: Settings, index: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of worker ``index``: the resolved settings as STREAMSCORE_* variables."""
    env = dict(os.environ if base is None else base)
    env |= {
        "STREAMSCORE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMSCORE_BACKEND": settings.backend_url,
        "STREAMSCORE_GROUP": settings.group,
        "STREAMSCORE_IMAGES_TOPIC": settings.images_topic,
        "STREAMSCORE_MODELS_TOPIC": settings.models_topic,
        "STREAMSCORE_PREDICTIONS_TOPIC": settings.predictions_topic,
        "STREAMSCORE_DLQ_TOPIC": settings.dlq_topic,
        "STREAMSCORE_BATCH_SIZE": str(settings.batch_size),
        "STREAMSCORE_LINGER_MS": str(settings.linger_ms),
        "STREAMSCORE_METRICS_PORT": str(settings.metrics_port + index if settings.metrics_port else 0),
        "STREAMSCORE_LOG_JSON": "true" if settings.log_json else "false",
        "STREAMSCORE_WORKER_INDEX": str(index),
    }
    # the model signature check must reach every worker, whatever .env the child would read
    if settings.model_public_key:
        env["STREAMSCORE_MODEL_PUBLIC_KEY"] = settings.model_public_key
    if settings.model_public_key_file is not None:
        env["STREAMSCORE_MODEL_PUBLIC_KEY_FILE"] = str(settings.model_public_key_file.resolve())
    return env


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, settings: Settings, workers: int, extra_args: Sequence[str] = ()) -> None:
        self.settings = settings
        self.count = workers
        self.extra_args = list(extra_args)
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts: dict[int, deque[float]] = {i: deque(maxlen=MAX_RESTARTS) for i in range(workers)}
        self.stopping = False

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streamscore.cli", "consume", *self.extra_args]

    def start(self, index: int) -> None:
        # a session of its own: a Ctrl-C in the terminal reaches the supervisor only, which
        # passes one SIGTERM on (a second signal would abort the worker's batch)
        self.children[index] = subprocess.Popen(self.command(), env=worker_env(self.settings, index),
                                                start_new_session=True)
        pid = self.children[index].pid
        log.info("worker %d started (pid %d)", index, pid, extra=event("worker-started", worker=index, pid=pid))

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Run until every worker has stopped; the first error exit code, else 0."""
        for index in range(self.count):
            self.start(index)
        status = 0
        while self.children:
            time.sleep(0.2)
            for index, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    continue
                del self.children[index]
                if code < 0 and not self.stopping and self._may_restart(index):
                    name = signal.Signals(-code).name
                    log.warning("worker %d (pid %d) killed by %s: restarting it", index, child.pid, name,
                                extra=event("worker-restarted", worker=index, pid=child.pid, signal=name))
                    self.start(index)
                elif code != 0 and not self.stopping:
                    log.error("worker %d exited with code %d: stopping the other workers", index, code)
                    status = status or (code if code > 0 else 1)
                    self.stop()
        return status

    def _may_restart(self, index: int) -> bool:
        now = time.monotonic()
        recent = self.restarts[index]
        if len(recent) == MAX_RESTARTS and now - recent[0] < 60:
            log.error("worker %d was killed %d times within a minute: not restarting it", index, MAX_RESTARTS)
            return False
        recent.append(now)
        return True


def run_workers(settings: Settings, workers: int, extra_args: Sequence[str] = ()) -> int:
    """Run ``workers`` consumer processes until SIGINT/SIGTERM; returns the exit status."""
    check_scale_out(settings.backend_url, workers)
    supervisor = Supervisor(settings, workers, extra_args)

    def forward(signum: int, _frame: object) -> None:
        log.info("%s received: stopping %d workers after their current batch",
                 signal.Signals(signum).name, len(supervisor.children))
        supervisor.stop(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return supervisor.run()
