"""What every loopback test server shares: a threaded HTTP server on 127.0.0.1 (port 0, the
OS picks one), started and stopped as a context manager, counting requests in flight.

A subclass sets its own attributes, calls `super().__init__()`, and returns its request
handler class from `_handler_class()`; handlers wrap their work in `server.in_flight()`.
"""
from __future__ import annotations

import contextlib
import threading
from http.server import ThreadingHTTPServer


class LoopbackServer:
    def __init__(self):
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _handler_class(self):
        raise NotImplementedError

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @contextlib.contextmanager
    def in_flight(self):
        """Count a request while it is being answered (max_in_flight records the peak)."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
