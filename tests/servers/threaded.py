"""The plumbing shared by the small test servers: a threaded HTTP server on a free loopback port."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["JsonHandler", "ThreadedServer"]

S = TypeVar("S", bound="ThreadedServer")


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that can answer with a JSON body."""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ThreadedServer:
    """Serves ``handler_class()`` in a thread while used as a context manager."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def closing(self) -> None:
        """Called before shutdown: release anything a handler may be waiting on."""

    def __enter__(self: S) -> S:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closing()
        self._server.shutdown()
        self._server.server_close()
