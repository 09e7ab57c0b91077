"""A small real HTTP server that misbehaves on purpose, one scripted behaviour per chat request.

For the fault tests: what a real server does now and then (or a wrong one always), on demand —
error statuses with the bodies real servers send, a hung answer, a body that is not JSON or not
UTF-8, a stream cut in the middle, an answer that ignores ``max_tokens``. It records every request
(path, headers, body, when, from which client port) and how many chat requests were open at once.
It runs in a thread on a free loopback port; ``UnacceptingServer`` is a port that never accepts.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from tests.servers.threaded import ThreadedServer

__all__ = [
    "CutStream",
    "Endless",
    "FaultyServer",
    "Hang",
    "Huge",
    "Raw",
    "Record",
    "Reply",
    "Status",
    "UnacceptingServer",
]


@dataclass(frozen=True)
class Reply:
    """A well-formed answer: SSE when the request asks for a stream, else one JSON body."""

    text: str = "a fine answer"
    #: Seconds to wait before answering (lets tests see requests overlap).
    delay_s: float = 0.0


@dataclass(frozen=True)
class Status:
    """An error status with a JSON (or raw bytes) body and extra headers, e.g. Retry-After."""

    code: int
    payload: object = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Raw:
    """Exactly these bytes as the body (not JSON, not UTF-8, ...)."""

    body: bytes
    content_type: str = "application/json"
    code: int = 200


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer (until the client hangs up or the server stops)."""


@dataclass(frozen=True)
class CutStream:
    """Start an SSE answer, send ``pieces``, then close the connection mid-stream. ``clean``: end
    the body properly (the last chunk), only without a finish reason or ``[DONE]``, as gateways do
    when their own timeout ends a stream."""

    pieces: tuple[str, ...] = ("The answer ", "was cut")
    clean: bool = False


@dataclass(frozen=True)
class Endless:
    """Stream ``piece`` again and again, ignoring max_tokens, until the client hangs up."""

    piece: str = "more "


@dataclass(frozen=True)
class Huge:
    """A one-piece JSON answer whose text is ``size`` characters, whatever max_tokens said."""

    size: int = 4_000_000


Behaviour = Reply | Status | Raw | Hang | CutStream | Endless | Huge


@dataclass(frozen=True)
class Record:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    #: time.monotonic() when it arrived
    at: float
    #: the client's (host, port): a new port is a new connection
    peer: tuple[str, int]


class FaultyServer(ThreadedServer):
    """Answers ``/v1/chat/completions`` as the next scripted behaviour says (then ``default``).

    ``GET /v1/models`` lists ``models`` (or answers ``models_status``). With ``api_key`` every
    request without ``Authorization: Bearer <api_key>`` gets llama-server's 401. ``requests`` records every
    request; ``max_open`` is the most chat requests it was answering at once; ``hung_up`` counts
    clients that closed their connection while a ``Hang`` or ``Endless`` held it.
    """

    def __init__(
        self,
        *script: Behaviour,
        default: Behaviour = Reply(),
        models: tuple[str, ...] = ("faulty",),
        models_status: Status | None = None,
        api_key: str | None = None,
    ) -> None:
        self.script: deque[Behaviour] = deque(script)
        self.api_key = api_key
        self.default = default
        self.models = models
        self.models_status = models_status
        self.requests: list[Record] = []
        self.hung_up = 0
        self.max_open = 0
        self._open = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        super().__init__()

    def then(self, *behaviours: Behaviour) -> FaultyServer:
        """Replace what is left of the script."""
        with self._lock:
            self.script = deque(behaviours)
        return self

    @property
    def open_now(self) -> int:
        """Chat requests being answered at this moment."""
        return self._open

    @property
    def chat_requests(self) -> list[Record]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def closing(self) -> None:
        self._stopping.set()

    def _next(self) -> Behaviour:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

            def _record(self, body: Any) -> None:
                peer = self.client_address
                owner.requests.append(
                    Record(
                        self.command,
                        self.path,
                        dict(self.headers.items()),
                        body,
                        time.monotonic(),
                        (str(peer[0]), int(peer[1])),
                    )
                )

            def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, payload: object, headers: dict[str, str] | None = None) -> None:
                self._send(code, json.dumps(payload).encode(), "application/json", headers or {})

            def _refused(self) -> bool:
                """True (after answering 401 as llama-server does) when the key is wrong or missing."""
                if owner.api_key is None or self.headers.get("Authorization") == f"Bearer {owner.api_key}":
                    return False
                error = {"message": "Invalid API Key", "type": "authentication_error", "code": 401}
                self._json(401, {"error": error})
                return True

            def do_GET(self) -> None:
                self._record(None)
                if self._refused():
                    return
                if self.path.endswith("/v1/models") and owner.models_status is None:
                    self._json(200, {"object": "list", "data": [{"id": m} for m in owner.models]})
                elif self.path.endswith("/v1/models") and owner.models_status is not None:
                    status = owner.models_status
                    self._json(status.code, status.payload, status.headers)
                else:
                    self._json(404, {"error": {"message": "File Not Found", "code": 404}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                self._record(body)
                if self._refused():
                    return
                if not self.path.endswith("/v1/chat/completions"):
                    self._json(404, {"error": {"message": "File Not Found", "code": 404}})
                    return
                with owner._lock:
                    owner._open += 1
                    owner.max_open = max(owner.max_open, owner._open)
                try:
                    self._behave(owner._next(), body if isinstance(body, dict) else {})
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: what Stop, a timeout or a cap does
                finally:
                    with owner._lock:
                        owner._open -= 1

            def _behave(self, behaviour: Behaviour, body: dict[str, Any]) -> None:
                if isinstance(behaviour, Reply):
                    time.sleep(behaviour.delay_s)
                    if body.get("stream"):
                        self._stream([behaviour.text], done=True, model=body.get("model"))
                    else:
                        self._json(200, _completion(behaviour.text, body))
                elif isinstance(behaviour, Status):
                    self._json(behaviour.code, behaviour.payload, behaviour.headers)
                elif isinstance(behaviour, Raw):
                    self._send(behaviour.code, behaviour.body, behaviour.content_type, {})
                elif isinstance(behaviour, Hang):
                    self._hold()
                elif isinstance(behaviour, CutStream):
                    self._stream(behaviour.pieces, done=False, model=body.get("model"))
                    if behaviour.clean:
                        self.wfile.write(b"0\r\n\r\n")
                        self.close_connection = True
                    # Close without the last chunk: the client sees a body that ends mid-stream.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif isinstance(behaviour, Endless):
                    self._start_stream()
                    while not owner._stopping.is_set():
                        self._event(_delta(behaviour.piece, body.get("model")))
                        time.sleep(0.001)
                elif isinstance(behaviour, Huge):
                    self._json(200, _completion("x" * behaviour.size, body))

            def _hold(self) -> None:
                while not owner._stopping.wait(0.05):
                    readable, _, _ = select.select([self.connection], [], [], 0)
                    # Readable with nothing to read: the client closed the connection.
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        owner.hung_up += 1
                        self.close_connection = True
                        return

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _event(self, payload: object) -> None:
                data = payload if isinstance(payload, str) else json.dumps(payload)
                chunk = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()

            def _stream(self, pieces: Iterable[str], *, done: bool, model: object) -> None:
                self._start_stream()
                for piece in pieces:
                    self._event(_delta(piece, model))
                if done:
                    self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self._event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
                    self._event("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")

        return Handler


def _delta(text: str, model: object) -> dict[str, Any]:
    """One streamed piece, naming the model asked for (as llama-server does)."""
    return {"model": model or "faulty", "choices": [{"index": 0, "delta": {"content": text}}]}


def _completion(text: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": body.get("model") or "faulty",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }


class UnacceptingServer:
    """A loopback port that listens but never accepts: its one-place queue is full, so a new
    connection attempt gets no answer at all and the client's connect timeout fires."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self._filler = socket.socket()
        self.port = int(self._listener.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UnacceptingServer:
        self._filler.connect(("127.0.0.1", self.port))  # takes the only place in the queue
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._filler.close()
        self._listener.close()
