"""Helpers of the lifecycle tests on fake Kafka: lifecycle commands through the real publisher code
with the fakes' clients, real MNIST images on the images topic, predictions read back."""

from __future__ import annotations

from streamscore.producers.lifecycle import Clients
from streamscore.shared.messages import Prediction, encode_image
from streamscore.shared.mnist import load_split
from support.fake_kafka import FakeCluster


def fake_clients(cluster: FakeCluster) -> Clients:
    return Clients(cluster.make_consumer, cluster.make_producer, idle_s=0.05)


def send_mnist(cluster: FakeCluster, rows: range, topic: str = "images") -> list[str]:
    """Test-set images ``rows`` (ids t10k-NNNNN, with labels) over the topic's two partitions."""
    split = load_split("test")
    ids = []
    for row in rows:
        key, value, headers = encode_image(f"t10k-{row:05d}", split.images[row].tobytes(), int(split.labels[row]))
        cluster.append(topic, row % 2, key, value, [(n, bytes(v or b"")) for n, v in headers])
        ids.append(key.decode())
    return ids


def predictions(cluster: FakeCluster, topic: str = "predictions") -> list[Prediction]:
    return [Prediction.from_json(m.value() or b"") for m in cluster.messages(topic)]
