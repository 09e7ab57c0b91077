"""A small real HTTP server that refuses some forms of ``response_format``, as older servers do.

llama.cpp before its ``json_schema`` support answered 400 'response_format type must be one of
"text" or "json_object", but got: json_schema'; strict gateways refuse fields they do not know.
This server answers each chat request either with such a 400 or with ``answer_text``, and keeps
every request body so a test can see what the client sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers.threaded import JsonHandler, ThreadedServer

__all__ = ["OLD_LLAMA_CPP_REFUSAL", "FormatRefusingServer", "format_of"]

#: What llama.cpp said to a json_schema response_format before it supported one.
OLD_LLAMA_CPP_REFUSAL = 'response_format type must be one of "text" or "json_object", but got: json_schema'


def format_of(body: Mapping[str, Any]) -> str:
    """``json_schema``, ``json_object_schema`` (json_object with a schema beside it), ``json_object``
    or ``none``: which form of response_format ``body`` carries."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return "none"
    if fmt.get("type") == "json_schema":
        return "json_schema"
    return "json_object_schema" if "schema" in fmt else "json_object"


class FormatRefusingServer(ThreadedServer):
    """Refuses a request whose :func:`format_of` is a key of ``refusals`` with 400 and that
    message; answers the others with ``answer_text`` (one JSON body, not streamed)."""

    def __init__(self, refusals: Mapping[str, str], answer_text: str = '{"ok": true}') -> None:
        self.refusals = dict(refusals)
        self.answer_text = answer_text
        self.requests: list[dict[str, Any]] = []
        super().__init__()

    @property
    def formats(self) -> list[str]:
        """The response_format form of each request so far, in order."""
        return [format_of(body) for body in self.requests]

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                owner.requests.append(body)
                refusal = owner.refusals.get(format_of(body))
                if refusal is not None:
                    error = {"code": 400, "message": refusal, "type": "invalid_request_error"}
                    self._json(400, {"error": error})
                    return
                message = {"role": "assistant", "content": owner.answer_text}
                self._json(
                    200,
                    {
                        "model": "format-refusing",
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    },
                )

        return Handler
