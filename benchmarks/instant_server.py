"""A minimal OpenAI-compatible server that answers at once (or after a set delay), for benchmarks.

It takes ``POST /v1/chat/completions`` and answers a fixed text (numbered, so every answer is
different), as plain JSON or, when the request asks for ``"stream": true``, as server-sent events
(one chunk per word, then a usage chunk when ``stream_options.include_usage`` is set, then
``[DONE]``), all written at once. ``GET /v1/models`` lists one model, ``GET /health`` answers ok and
``GET /stats`` returns counters. It sends the CORS headers llama-server sends (echoing ``Origin``,
no ``Access-Control-Max-Age``), so a web page can call it the same way.

The delay is chosen per request through the path: ``{base}/delay/1.5/v1/chat/completions`` answers
after 1.5 s, i.e. give a client ``base_url=http://127.0.0.1:PORT/delay/1.5``. Without the prefix the
server's ``--delay`` applies (default 0).

It is plain asyncio (HTTP/1.1 keep-alive, Content-Length request bodies, chunked SSE responses),
so it costs next to nothing per request. Run ``python -m benchmarks.instant_server [--port P]``; it
prints ``listening on http://127.0.0.1:P`` and serves until killed. `InstantServer` starts it as a
child process (so its CPU time is its own) and stops it again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

__all__ = ["ANSWER_WORDS", "InstantServer", "main"]

MODEL_ID = "instant"
ANSWER_WORDS = ("a", "red", "square", "top", "left,", "green", "top", "right,", "blue", "and", "yellow.")
_DELAY_PREFIX = re.compile(r"^/delay/(?P<seconds>[0-9]+(?:\.[0-9]*)?)(?P<rest>/.*)$")
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


@dataclass
class _Counters:
    chat: int = 0
    streamed: int = 0
    preflights: int = 0
    connections: int = 0
    started: float = field(default_factory=time.time)


class _Server:
    def __init__(self, default_delay: float) -> None:
        self.default_delay = default_delay
        self.counters = _Counters()
        self._numbers = itertools.count(1)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, version = parts
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                await self._respond(writer, method, target, headers, body, keep_alive)
                if not keep_alive:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        path = target.split("?", 1)[0]
        delay = self.default_delay
        match = _DELAY_PREFIX.match(path)
        if match:
            delay, path = float(match["seconds"]), match["rest"]
        extra = _cors(headers.get("origin"))
        extra["Connection"] = "keep-alive" if keep_alive else "close"
        if method == "OPTIONS":
            self.counters.preflights += 1
            extra |= {
                "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "*",
            }
            await _send(writer, 200, "text/html", b"", extra)
        elif method == "GET" and path == "/v1/models":
            payload = {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "bench"}]}
            await _send_json(writer, 200, payload, extra)
        elif method == "GET" and path == "/health":
            await _send_json(writer, 200, {"status": "ok"}, extra)
        elif method == "GET" and path == "/stats":
            await _send_json(writer, 200, self.counters.__dict__, extra)
        elif method == "POST" and path == "/v1/chat/completions":
            await self._chat(writer, body, delay, extra)
        else:
            await _send_json(writer, 404, {"error": {"message": f"{method} {path} not found"}}, extra)

    async def _chat(
        self, writer: asyncio.StreamWriter, body: bytes, delay: float, extra: dict[str, str]
    ) -> None:
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            await _send_json(writer, 400, {"error": {"message": f"invalid JSON: {exc}"}}, extra)
            return
        self.counters.chat += 1
        number = next(self._numbers)
        words = [f"answer {number}:", *ANSWER_WORDS]
        text = " ".join(words)
        usage = {"prompt_tokens": 1, "completion_tokens": len(words), "total_tokens": len(words) + 1}
        if delay > 0:
            await asyncio.sleep(delay)
        ident, created = f"chatcmpl-{number}", int(time.time())
        if not request.get("stream"):
            payload = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": MODEL_ID,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
            await _send_json(writer, 200, payload, extra)
            return
        self.counters.streamed += 1
        options = request.get("stream_options")
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID}
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            events.append(
                {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            )
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if with_usage:
            events.append({**base, "choices": [], "usage": usage})
        stream = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"
        head = _head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", **extra})
        # One chunk holding every event: the client still parses them one by one.
        writer.write(head + f"{len(stream):x}\r\n".encode() + stream + b"\r\n0\r\n\r\n")
        await writer.drain()


def _cors(origin: str | None) -> dict[str, str]:
    # What llama-server answers: the request's Origin echoed, credentials allowed, no max-age.
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Server: rtvlm-bench-instant"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes, extra: dict[str, str]
) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **extra}
    writer.write(_head(status, headers) + body)
    await writer.drain()


async def _send_json(
    writer: asyncio.StreamWriter, status: int, payload: object, extra: dict[str, str]
) -> None:
    await _send(writer, status, "application/json", json.dumps(payload).encode(), extra)


async def _serve(host: str, port: int, delay: float) -> None:
    server = _Server(delay)
    listener = await asyncio.start_server(server.handle, host, port)
    bound = listener.sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    async with listener:
        await listener.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.delay))
    return 0


class InstantServer:
    """Runs this module as a child process on a free loopback port; a context manager."""

    def __init__(self, *, delay: float = 0.0, log_path: Path | None = None) -> None:
        self.delay = delay
        self.log_path = log_path
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("instant server not started")
        return self._proc.pid

    def url(self, delay: float | None = None) -> str:
        """The base URL, answering after ``delay`` seconds when given."""
        return self.base_url if delay is None else f"{self.base_url}/delay/{delay:g}"

    def start(self, timeout: float = 20.0) -> InstantServer:
        root = Path(__file__).resolve().parent.parent
        cmd = [sys.executable, "-m", "benchmarks.instant_server", "--delay", str(self.delay)]
        with contextlib.ExitStack() as stack:
            stderr = stack.enter_context(self.log_path.open("w")) if self.log_path else subprocess.DEVNULL
            self._proc = subprocess.Popen(
                cmd, cwd=root, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True
            )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()  # blocks until the server prints or exits
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"instant server did not start (said {line!r}); see {self.log_path}")
        self.base_url = line.removeprefix("listening on ")
        deadline = time.monotonic() + timeout
        while httpx.get(self.base_url + "/health", timeout=2.0).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("instant server not healthy")
            time.sleep(0.05)
        return self

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(self.base_url + "/stats", timeout=5.0).json()
        return stats

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> InstantServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
