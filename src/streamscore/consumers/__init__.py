"""Consumers: the scoring loop, the model watcher, the evaluator."""
