"""Images under generated ids for the bench's long runs (more images than the test split, each id once)."""

from __future__ import annotations

from confluent_kafka import Producer

from streamscore.shared.messages import encode_image
from streamscore.shared.mnist import MnistSplit


def send_numbered(producer: Producer, topic: str, split: MnistSplit, image_id: str, n: int) -> None:
    """Produce image ``n`` of ``split`` (cycling) under ``image_id``, waiting while the local queue is full."""
    index = n % len(split)
    key, value, headers = encode_image(image_id, split.images[index].tobytes(), int(split.labels[index]))
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers)
            return
        except BufferError:
            producer.poll(0.1)
