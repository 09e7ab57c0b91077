"""A real HTTP server that streams its answer slowly, token by token, as server-sent events.

Lets a test watch an answer grow in the page: llama-server with the tiny model is too fast to see.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers.threaded import ThreadedServer

__all__ = ["TrickleServer"]


class TrickleServer(ThreadedServer):
    """Streams ``tokens`` one per ``gap_s`` for each chat request, then ``[DONE]`` and usage."""

    def __init__(self, tokens: list[str], gap_s: float = 0.3) -> None:
        self.tokens = tokens
        self.gap_s = gap_s
        self.streams_started = 0
        #: TCP connections accepted (a client that reuses its connection opens one).
        self.connections = 0
        super().__init__()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                owner.connections += 1

            def do_GET(self) -> None:
                body = json.dumps({"data": [{"id": "trickle"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _event(self, payload: object) -> None:
                data = payload if isinstance(payload, str) else json.dumps(payload)
                chunk = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.streams_started += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for token in owner.tokens:
                        self._event(
                            {"model": "trickle", "choices": [{"index": 0, "delta": {"content": token}}]}
                        )
                        time.sleep(owner.gap_s)
                    self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self._event(
                        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(owner.tokens)}}
                    )
                    self._event("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped listening (Stop, or a new question)

        return Handler
