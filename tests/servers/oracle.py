"""An oracle VLM: it decodes the JPEG it is sent and answers truthfully from the pixels.

Every boolean the request's JSON schema asks for is true when the picture has a magenta region
(at least 2 % of its pixels) and the question (the property's description) mentions magenta;
false otherwise. For tests of watched conditions, where the truth must be known.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np

from tests.servers.threaded import JsonHandler, ThreadedServer

__all__ = ["MAGENTA", "OracleServer", "has_magenta"]

MAGENTA = (255, 0, 255)  # BGR


def has_magenta(jpeg: bytes) -> bool:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return False
    b, g, r = (image[..., i].astype(np.int16) for i in range(3))
    magenta = (b > 180) & (r > 180) & (g < 90)
    return bool(magenta.mean() >= 0.02)


class OracleServer(ThreadedServer):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "oracle"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with owner._lock:
                    owner.requests.append(body)
                seen = False
                for part in body["messages"][-1]["content"]:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        url = part["image_url"]["url"]
                        seen = seen or has_magenta(base64.b64decode(url.split(",", 1)[1]))
                fmt = body.get("response_format") or {}
                schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema") or {}
                answer = {
                    key: seen and "magenta" in str(spec.get("description", "")).lower()
                    for key, spec in (schema.get("properties") or {}).items()
                    if spec.get("type") == "boolean"
                }
                text = json.dumps(answer)
                self._json(
                    200,
                    {
                        "model": "oracle",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 8},
                    },
                )

        return Handler
