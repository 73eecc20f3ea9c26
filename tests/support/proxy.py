"""A threaded TCP forwarder that can cut every connection and refuse new ones, then let them through again.

Between a client and a server (PostgreSQL, the Kafka broker) it plays an outage of the
server or a network partition while the server itself keeps running and keeps its state.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from streamscore.backends.url import BackendURL


class OutageProxy:
    """Forwards 127.0.0.1:<port> to a server; :meth:`down` cuts every connection and refuses new ones.

    A refused connection is what a crashed server or a network partition looks like to
    the client (libpq: no SQLSTATE), without touching the shared server itself.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._up = threading.Event()
        self._up.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def url_for(self, url: str) -> str:
        parsed = BackendURL.parse(url)
        return url.replace(f"@{parsed.host}:{parsed.port}", f"@127.0.0.1:{self.port}", 1) if parsed.port else \
            url.replace(f"@{parsed.host}", f"@127.0.0.1:{self.port}", 1)

    def down(self) -> None:
        self._up.clear()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if not self._up.is_set():  # cut while this connection was being made
                    client.close()
                    server.close()
                    continue
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
