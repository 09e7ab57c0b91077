"""A small real HTTP server that speaks just enough OpenAI API, and holds answers until told to.

For tests that need a server to behave in a way llama-server will not on demand: answer only when
the test says so, show which headers and bodies arrived, and notice when the client hangs up on a
request it is holding (what Stop must do). It runs in a thread on a free loopback port.
"""

from __future__ import annotations

import json
import select
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers.threaded import JsonHandler, ThreadedServer

__all__ = ["GatedServer"]


class GatedServer(ThreadedServer):
    """Answers ``/v1/chat/completions`` with ``answer_text`` once ``release()`` is called.

    ``gated=False`` answers at once. ``requests`` and ``headers`` record every chat request;
    ``hung_up`` is set when a client closed its connection while its request was held.
    """

    def __init__(
        self, answer_text: str = "a held answer", *, models: tuple[str, ...] = ("gated",), gated: bool = True
    ) -> None:
        self.answer_text = answer_text
        self.models = models
        self.received = threading.Event()
        self.hung_up = threading.Event()
        self._gate = threading.Event()
        if not gated:
            self._gate.set()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        super().__init__()

    def release(self) -> None:
        self._gate.set()

    @property
    def image_requests(self) -> list[dict[str, Any]]:
        """The chat requests that carried an image (not the widget's text-only token count)."""
        return [r for r in self.requests if _has_image(r)]

    def hold(self) -> None:
        """Hold the following requests again (after ``release``)."""
        self._gate.clear()
        self.received.clear()

    def closing(self) -> None:
        self._gate.set()

    def _wait_for_gate(self, handler: BaseHTTPRequestHandler) -> bool:
        """Hold until released; False if the client hung up meanwhile (nothing left to answer)."""
        for _ in range(1200):  # at most ~60 s
            if self._gate.wait(timeout=0.05):
                return True
            readable, _, _ = select.select([handler.connection], [], [], 0)
            # Readable with no data left means end of stream: the client closed the connection.
            if readable and not handler.connection.recv(1, 2):  # 2 = MSG_PEEK
                self.hung_up.set()
                return False
        return True

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": m} for m in owner.models]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                owner.requests.append(json.loads(self.rfile.read(length)))
                owner.headers.append(dict(self.headers.items()))
                owner.received.set()
                if not owner._wait_for_gate(self):
                    return
                self._json(
                    200,
                    {
                        "model": owner.requests[-1].get("model", owner.models[0]),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": owner.answer_text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    },
                )

        return Handler


def _has_image(body: dict[str, Any]) -> bool:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
            return True
    return False
