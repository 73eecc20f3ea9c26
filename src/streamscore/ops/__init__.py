"""Operational views of a running deployment (``streamscore status``)."""
