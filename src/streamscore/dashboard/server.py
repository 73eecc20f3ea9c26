"""The dashboard's HTTP server: the page, its static files, the JSON API and the server-sent events.

Routes (GET only):

* ``/`` — the page (``static/index.html``); ``/static/<file>`` — its script and style, served from
  the package (no CDN: the page works offline);
* ``/api/summary`` — the public summary (:func:`streamscore.dashboard.views.summary`);
* ``/api/state`` — everything the page draws;
* ``/api/events`` — ``text/event-stream``: an ``event: state`` with the page's state whenever it
  changed (at most every ``push_interval_s``), a comment line every 15 s to keep proxies open;
* ``/api/digits/<image id>.png`` — a digit's pixels (404 when the dashboard has not kept them).

The stdlib ThreadingHTTPServer (as the metrics endpoint): one daemon thread per connection, so an
open event stream never blocks the other requests. :meth:`DashboardServer.close` ends the event
streams, stops serving and frees the port.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from streamscore.dashboard.pixels import digit_png
from streamscore.errors import ConfigError

log = logging.getLogger(__name__)

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
KEEPALIVE_S = 15.0


class DashboardServer:
    """Serves the page and the API on a daemon thread; ``state()`` returns (generation, JSON-able state)."""

    def __init__(self, *, state: Callable[[], tuple[int, dict[str, Any]]], summary: Callable[[], dict[str, Any]],
                 pixels: Callable[[str], bytes | None], host: str = "127.0.0.1", port: int = 8050,
                 push_interval_s: float = 0.5) -> None:
        self._closing = threading.Event()
        static = resources.files("streamscore.dashboard") / "static"
        files = {entry.name: entry.read_bytes() for entry in static.iterdir() if entry.is_file()}
        closing = self._closing

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                if path in ("/", "/index.html"):
                    self._file("index.html")
                elif path.startswith("/static/"):
                    self._file(path.removeprefix("/static/"))
                elif path == "/api/summary":
                    self._json(summary())
                elif path == "/api/state":
                    self._json(state()[1])
                elif path == "/api/events":
                    self._events()
                elif path.startswith("/api/digits/") and path.endswith(".png"):
                    image_id = urllib.parse.unquote(path.removeprefix("/api/digits/").removesuffix(".png"))
                    found = pixels(image_id)
                    if found is None:
                        self._send(404, "text/plain; charset=utf-8", b"no pixels kept for this image\n")
                    else:
                        self._send(200, "image/png", digit_png(found), cache=True)
                else:
                    self._send(404, "text/plain; charset=utf-8",
                               b"not found: try /, /api/summary, /api/state or /api/events\n")

            def _file(self, name: str) -> None:
                suffix = name[name.rfind("."):] if "." in name else ""
                if name not in files or suffix not in CONTENT_TYPES:
                    self._send(404, "text/plain; charset=utf-8", b"no such file\n")
                else:
                    self._send(200, CONTENT_TYPES[suffix], files[name])

            def _json(self, body: dict[str, Any]) -> None:
                self._send(200, "application/json", json.dumps(body).encode())

            def _send(self, status: int, content_type: str, body: bytes, cache: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                sent, last_write = -1, 0.0
                try:
                    self.wfile.write(b"retry: 2000\n\n")
                    while not closing.is_set():
                        generation, body = state()
                        if generation != sent:
                            self.wfile.write(b"event: state\ndata: " + json.dumps(body).encode() + b"\n\n")
                            sent, last_write = generation, time.monotonic()
                        elif time.monotonic() - last_write > KEEPALIVE_S:
                            self.wfile.write(b": keep-alive\n\n")
                            last_write = time.monotonic()
                        self.wfile.flush()
                        closing.wait(push_interval_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser went away

            def log_message(self, format: str, *args: object) -> None:
                log.debug("dashboard: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is in use; choose another with --port "
                                  "(0 picks a free one)", reason="port-in-use") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port",
                              reason="cannot-listen") from None
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}/"

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
