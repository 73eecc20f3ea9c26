"""The Grafana dashboard and Prometheus config of `docker compose --profile observability up`.

Docker cannot run here, so this checks what can go wrong without it: the dashboard JSON parses, every
panel's PromQL names only metrics (and labels) that the real exporter serves — read from a running
MetricsServer's /metrics, not from a list kept here — every streamscore metric family has a panel, the
panels use the provisioned datasource, and the compose services mount files that exist.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamscore.consumers.metrics import MetricsServer, ScorerMetrics

yaml = pytest.importorskip("yaml", reason="pip install pyyaml (in the dev extra)")

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "streamscore.json"
#: labels Prometheus adds to every scraped series
TARGET_LABELS = {"instance", "job"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


@pytest.fixture(scope="module")
def exposition() -> dict[str, set[str]]:
    """Sample name → label names, as a scorer's /metrics serves them once every metric has a sample."""
    metrics = ScorerMetrics()
    # what a scorer records while it runs (publisher.py, partitions.py, scorer.py): one sample each
    metrics.consumed.inc(3)
    metrics.scored.labels("1").inc(3)
    metrics.dead_lettered.labels("bad-length").inc()
    metrics.batches.inc()
    metrics.db_retries.inc()
    metrics.batch_seconds.observe(0.02)
    metrics.observe_latency(np.asarray([1_000], np.int64), np.asarray([1_040], np.int64))
    metrics.model_version.set(1)
    metrics.paused.set(0)
    metrics.kafka_unreachable.set(0)
    metrics.lag.labels("mnist.images", "0").set(5)
    metrics.stalled.labels("mnist.images", "0").set(0)
    metrics.model_rejections.labels("bad-signature").inc()
    metrics.model_install_retries.inc()
    server = MetricsServer(metrics, lambda: (True, []), port=0, host="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        server.close()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))  # rows hold panels of their own


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and numbers left out)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # label matchers, range selectors
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    names = re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def grouping_labels(expr: str) -> set[str]:
    found: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        found |= {label.strip() for label in group.split(",") if label.strip()}
    return found | set(re.findall(r"(\w+)\s*[=!]~?\s*\"", expr))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_every_panel_queries_metrics_the_exporter_serves(exposition: dict[str, set[str]]) -> None:
    board = dashboard()
    assert board["uid"] and board["panels"]
    for panel in panels(board["panels"]):
        if panel.get("type") == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"panel {panel['title']!r}: no metric in {target['expr']!r}"
            unknown = names - set(exposition)
            assert not unknown, f"panel {panel['title']!r} queries {sorted(unknown)}, not served by /metrics"
            labels = set().union(*(exposition[name] for name in names)) | TARGET_LABELS
            assert grouping_labels(target["expr"]) <= labels, f"panel {panel['title']!r}: unknown label"


def test_every_streamscore_metric_has_a_panel(exposition: dict[str, set[str]]) -> None:
    queried = {name for panel in panels(dashboard()["panels"]) for target in panel.get("targets", [])
               for name in metric_names(target["expr"])}
    family = re.compile(r"_(total|bucket|sum|count|created)$")
    served = {family.sub("", name) for name in exposition if name.startswith("streamscore_")}
    assert served <= {family.sub("", name) for name in queried}


def test_the_metric_check_can_fail() -> None:
    assert metric_names('sum by (le) (rate(streamscore_batch_seconds_bucket{job="x"}[1m]))') == \
        {"streamscore_batch_seconds_bucket"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(no_such_metric[5m]))) > 0") == {"no_such_metric"}
    assert grouping_labels('sum by (topic, partition) (x{reason="a"})') == {"topic", "partition", "reason"}


def test_panels_use_the_provisioned_datasource_and_compose_mounts_exist() -> None:
    provisioned = yaml.safe_load((OBSERVABILITY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    assert provisioned["datasources"][0]["url"] == "http://prometheus:9090"
    for panel in panels(dashboard()["panels"]):
        assert panel["datasource"]["uid"] == uid, panel["title"]
    scrape = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())["scrape_configs"]
    assert [job["metrics_path"] for job in scrape] == ["/metrics"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["observability"]
        for volume in compose[name]["volumes"]:
            assert (ROOT / volume.split(":")[0]).exists(), volume
    dashboards = yaml.safe_load((OBSERVABILITY / "grafana/provisioning/dashboards/streamscore.yml").read_text())
    assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
