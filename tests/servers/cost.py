"""A small real HTTP server whose answers report whatever prompt cost a test scripts for an image.

For the send-size probe's edge cases that llama-server will not produce on demand: no ``usage`` at
all, failures at some sizes, costs that fall again at a larger size. It decodes each request's
image to learn its size, answers in one JSON piece, and records every request body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np

from tests.servers.threaded import JsonHandler, ThreadedServer

__all__ = ["CostServer", "Size"]

#: (width, height) of the request's image, or None for a request without one.
Size = tuple[int, int] | None


def _image_size(body: dict[str, Any]) -> Size:
    for message in body.get("messages", []):
        for part in message.get("content", []):
            if isinstance(part, dict) and part.get("type") == "image_url":
                encoded = part["image_url"]["url"].split(",", 1)[1]
                data = np.frombuffer(base64.b64decode(encoded), np.uint8)
                image = cv2.imdecode(data, cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError("the request's image is not decodable")
                return int(image.shape[1]), int(image.shape[0])
    return None


class CostServer(ThreadedServer):
    """Answers ``/v1/chat/completions`` with ``usage.prompt_tokens = cost(size)``.

    ``cost`` returning None leaves ``usage`` out of the answer; returning a negative number makes
    the request fail with a 500. ``requests`` holds every request body, in order.
    """

    def __init__(self, cost: Callable[[Size], int | None]) -> None:
        self.cost = cost
        self.requests: list[dict[str, Any]] = []
        super().__init__()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            # Headers and body leave in two writes; with Nagle each request would wait ~40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                owner.requests.append(body)
                prompt = owner.cost(_image_size(body))
                if prompt is not None and prompt < 0:
                    self._json(500, {"error": {"message": "scripted failure"}})
                    return
                answer: dict[str, Any] = {
                    "model": "cost",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "length",
                        }
                    ],
                }
                if prompt is not None:
                    answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": 1}
                self._json(200, answer)

        return Handler
