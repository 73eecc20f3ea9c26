"""The contract producers and consumers share: settings, wire formats, Kafka clients, MNIST files."""
