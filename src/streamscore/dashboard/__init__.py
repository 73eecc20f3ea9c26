"""`streamscore dashboard`: a live web page over the evaluation, dead-letter and models topics."""

from streamscore.dashboard.app import Dashboard, serve_until

__all__ = ["Dashboard", "serve_until"]
