"""Fault drills on the embedded broker and PostgreSQL: outages, rebalances, scale-out, data errors.

Each test gets a schema of its own (tests/postgres_fixtures.py). Outages are played by
a TCP proxy between the consumers and the server (support.proxy.OutageProxy): it cuts
every connection and refuses new ones, which is what a crashed server or a network
partition looks like to libpq, without disturbing the shared server. Every drill ends
with the invariant of tests/support/drill.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamscore.backends import open_backend
from streamscore.backends.url import BackendURL
from streamscore.broker.embedded import free_port
from streamscore.shared.config import Settings
from streamscore.shared.mnist import MnistSplit
from support.databases import postgres_connect, postgres_rows
from support.drill import Drill, drill, drill_settings, healthz, wait_until
from support.malformed import MALFORMED
from support.offsets import committed_offsets, end_offsets
from support.proxy import OutageProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[OutageProxy]:
    parsed = BackendURL.parse(postgres_url)
    running = OutageProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def pg(make_settings: Callable[..., Settings], tmp_path: Path, test_split: MnistSplit,
       postgres_url: str, proxy: OutageProxy) -> Iterator[Drill]:
    url = proxy.url_for(postgres_url)
    settings = drill_settings(make_settings, backend=url)
    with drill(settings, url, tmp_path, test_split) as running:
        yield running


def finish(d: Drill) -> None:
    d.wait_predicted()
    d.wait_dead_letters()
    for consumer in d.consumers:
        if consumer.process.poll() is None:
            consumer.stop()
    d.check_invariant(*postgres_rows(d.backend_url))


def test_workers_share_the_group_and_a_killed_worker_is_restarted(pg: Drill) -> None:
    pg.produce(0, 400)
    pg.send_malformed()
    supervisor = pg.start_consumer("--workers", "2")
    supervisor.wait_event("worker-started", 30, count=2)
    supervisor.wait_event("assigned", 40, count=2)  # the workers log into the supervisor's stream
    producer = pg.produce_in_background(400, 1400, rate=400)
    seen = pg.predictions.count()
    wait_until(lambda: pg.predictions.count() >= seen + 100, 30, "progress")
    pid = int(supervisor.events("worker-started", worker=0)[0]["data"]["pid"])
    import os
    import signal

    os.kill(pid, signal.SIGKILL)  # mid-batch: the supervisor restarts it, it resumes from the stored offsets
    supervisor.wait_event("worker-restarted", signal="SIGKILL")
    producer.join(30)
    finish(pg)
    assert supervisor.process.returncode == 0, supervisor.tail()


def test_database_outage_pauses_and_resumes(pg: Drill, proxy: OutageProxy) -> None:
    port = free_port()
    consumer = pg.start_consumer("--metrics-port", str(port))
    consumer.wait_event("assigned")
    pg.produce(0, 300)
    pg.wait_predicted()
    proxy.down()
    producer = pg.produce_in_background(300, 1000, rate=300)
    pg.send_malformed()
    # paused, polling (still in the group), retrying with backoff; the watchdog names the stalled partitions
    consumer.wait_event("retry", 30, attempt=3, cause="database")
    wait_until(lambda: healthz(port)[0] == 503, 30, lambda: f"/healthz to fail: {healthz(port)}")
    _, body = healthz(port)
    assert re.search(r"t\.\w+\.images\[\d\] stalled at offset \d+ with lag \d+", body), body
    consumer.wait_event("stalled", 10)  # logged by the loop, at most a few seconds after /healthz sees it
    assert consumer.process.poll() is None and not consumer.events("revoked")
    assert not pg.dlq.count(), "an outage sends nothing to the DLQ"
    proxy.up()
    producer.join(30)
    finish(pg)


def test_second_consumer_joins_then_one_leaves(pg: Drill) -> None:
    first = pg.start_consumer()
    first.wait_event("assigned")
    producer = pg.produce_in_background(0, 1500, rate=300)
    pg.send_malformed()
    wait_until(lambda: pg.predictions.count() >= 200, 30, "progress of the first consumer")
    second = pg.start_consumer()
    second.wait_event("assigned")  # cooperative-sticky: the first keeps what it is not giving away
    seen = pg.predictions.count()
    wait_until(lambda: pg.predictions.count() >= seen + 200, 30, "progress with two consumers")
    assert first.stop() == 0  # one leaves: the other takes its partitions over
    producer.join(30)
    second.wait_event("assigned", 30, count=2)
    finish(pg)


def test_pause_rebalance_resume(pg: Drill, proxy: OutageProxy) -> None:
    """The database goes down while a second consumer joins; once it is back, lag drains to 0 unaided."""
    first = pg.start_consumer()
    first.wait_event("assigned")
    pg.produce(0, 600, rate=400)
    second = pg.start_consumer()
    second.wait_event("subscribed")  # connected and serving; its group join takes a few seconds
    proxy.down()
    pg.produce(600, 1200)
    pg.send_malformed()
    second.wait_event("assigned")
    wait_until(lambda: bool(first.events("paused") and (
        second.events("paused") or second.events("assigned", paused=True))), 30,
        lambda: f"both paused:\n{first.tail()}\n{second.tail()}")
    proxy.up()
    finish_ids = len(pg.produced_ids)
    pg.wait_predicted()
    total = 1200 + len(MALFORMED)
    ends = end_offsets(pg.settings, total)
    wait_until(lambda: committed_offsets(pg.settings) == ends, 30,
               lambda: f"committed {committed_offsets(pg.settings)} to reach {ends}")
    assert finish_ids == len(pg.produced_ids)
    finish(pg)


def test_data_error_dead_letters_the_row_with_its_sqlstate(pg: Drill) -> None:
    with open_backend(pg.backend_url) as backend:
        backend.init_schema()
    with postgres_connect(pg.backend_url) as conn:
        conn.execute("ALTER TABLE images ADD CONSTRAINT drill_refuses_one CHECK (image_id <> 't10k-00123')")
    pg.produce(0, 400)
    pg.send_malformed()
    pg.start_consumer()
    pg.produced_ids.discard("t10k-00123")
    wait_until(lambda: "t10k-00123" in pg.dlq.ids(), 40, "the refused row in the DLQ")
    refused = [(h, v) for k, h, v in pg.dlq.snapshot() if k == "t10k-00123"]
    headers, value = refused[0]
    assert headers["error.reason"] == b"db-rejected" and value is not None and len(value) == 784
    assert b"[23514]" in headers["error.message"] and b"drill_refuses_one" in headers["error.message"]
    pg.malformed_offsets[(int(headers["source.partition"]), int(headers["source.offset"]))] = "db-rejected"
    finish(pg)


def test_permanent_error_stops_the_consumer_with_the_reason(pg: Drill) -> None:
    consumer = pg.start_consumer()
    consumer.wait_event("assigned")
    pg.produce(0, 200)
    pg.wait_predicted()
    with postgres_connect(pg.backend_url) as conn:
        conn.execute("ALTER TABLE predictions RENAME TO predictions_away")
    pg.produce(200, 400)
    assert consumer.process.wait(30) == 2, consumer.tail()
    (fatal,) = consumer.events("fatal")
    assert "42P01" in fatal["data"]["error"]
    with postgres_connect(pg.backend_url) as conn:
        conn.execute("ALTER TABLE predictions_away RENAME TO predictions")
    pg.send_malformed()
    pg.start_consumer()
    finish(pg)
