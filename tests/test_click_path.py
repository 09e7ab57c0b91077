"""The fast path's kernel side: the probe never delays an answer, server timings reach the answer,
and a frame sent with a click is used as it came."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np
import pytest

from rtvlm_widget import RealtimeVLM
from rtvlm_widget._chat import ServerTiming
from rtvlm_widget._protocol import Ask, ProtocolError, parse_reply
from tests.aio import run_async
from tests.servers.llama import LlamaServer
from tests.servers.threaded import JsonHandler, ThreadedServer

FRAME = np.full((480, 640, 3), (30, 160, 90), np.uint8)
JPEG = bytes(cv2.imencode(".jpg", FRAME)[1])


class ProbeHoldingServer(ThreadedServer):
    """Answers at once, except the one-token image requests of the send-size probe, which it holds
    until ``release()``."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.held: list[dict[str, Any]] = []
        self._gate = threading.Event()
        super().__init__()

    def release(self) -> None:
        self._gate.set()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "holding"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                images = sum(
                    1
                    for message in body.get("messages", [])
                    if isinstance(message.get("content"), list)
                    for part in message["content"]
                    if part.get("type") == "image_url"
                )
                probe = body.get("max_tokens") == 1 and images > 0
                (owner.held if probe else owner.answers).append(body)
                if probe and not owner._gate.wait(30):
                    return
                self._json(
                    200,
                    {
                        "model": "holding",
                        "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10 + 50 * images, "completion_tokens": 1},
                    },
                )

        return Handler


@asynccontextmanager
async def app_on(base_url: str, **kwargs: Any) -> AsyncIterator[RealtimeVLM]:
    app = RealtimeVLM(base_url=base_url, source=[FRAME], max_tokens=8, **kwargs)
    try:
        yield app
    finally:
        app.close()
        await app._controller.aclose()


async def until(condition: Any, what: str, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_send_size_probe_runs_beside_the_first_answer_not_before_it() -> None:
    async def go(server: ProbeHoldingServer) -> None:
        async with app_on(server.base_url, model="holding", send_size="auto") as app:
            size = app._controller.send_size
            answer = await app.ask_async()
            # The answer came while the probe's requests were still held by the server.
            assert answer.ok and answer.text == "ok"
            await until(lambda: server.held, "the probe's first request")
            assert size.measuring and size.probe is None
            assert "measuring image cost" in app._panel.send_size.summary.value
            assert (answer.frame_width, answer.frame_height) == (640, 480)  # the last known: original
            # A second answer does not start another probe, nor wait for this one.
            assert (await app.ask_async()).ok
            server.release()
            await until(lambda: size.probe is not None and not size.measuring, "the probe to finish")
            assert size.probe is not None and size.probe.rows
            assert "measuring" not in app._panel.send_size.summary.value
            # Image tokens come from the probe's rows from now on: no text-only request per prompt.
            asked = len(server.answers)
            later = await app.ask_async("Something else entirely?")
            assert later.image_tokens == 50 and len(server.answers) == asked + 1

    with ProbeHoldingServer() as server:
        run_async(go(server))


def test_llama_server_timings_reach_the_answer(llama_server: LlamaServer) -> None:
    async def go() -> list[Any]:
        async with app_on(llama_server.base_url, send_size="original") as app:
            return [await app.ask_async(stream=stream) for stream in (False, True)]

    for answer in run_async(go()):
        timing = answer.timing
        assert timing is not None and answer.ok
        assert timing.server_prefill_s is not None and timing.server_prefill_s > 0
        assert timing.server_decode_s is not None and timing.server_decode_s >= 0
        # The model's own time is part of the HTTP request's, which is part of the whole.
        assert timing.model_s is not None and timing.model_s <= timing.http_s <= timing.total_s
        assert timing.as_dict()["server_prefill_s"] == timing.server_prefill_s


def test_server_timings_are_read_only_when_well_formed() -> None:
    good = ServerTiming.from_payload({"prompt_n": 12, "prompt_ms": 30.5, "predicted_n": 4, "predicted_ms": 8})
    assert good == ServerTiming(prefill_s=0.0305, decode_s=0.008, prompt_tokens=12, predicted_tokens=4)
    assert good.total_s == pytest.approx(0.0385)
    bad: list[object] = [None, [], {"prompt_ms": 1}]
    for prompt_ms in ("1", -1, float("nan"), True):
        bad.append({"prompt_ms": prompt_ms, "predicted_ms": 2})
    for payload in bad:
        assert ServerTiming.from_payload(payload) is None


def test_an_ask_from_the_page_carries_its_frame_or_none() -> None:
    fields = {"kind": "ask", "seq": 3, "width": 640, "height": 480, "captured_at_ms": 1.0, "encode_ms": 2.0}
    ask = parse_reply(fields, [memoryview(JPEG)])
    assert isinstance(ask, Ask) and ask.frame is not None
    assert ask.frame.jpeg == JPEG and (ask.frame.width, ask.frame.height) == (640, 480)
    bare = parse_reply({"kind": "ask", "seq": 4}, [])
    assert bare == Ask(None)  # no frame to give: the kernel takes one itself
    with pytest.raises(ProtocolError, match="not a JPEG"):
        parse_reply(fields, [b"GIF89a"])
    with pytest.raises(ProtocolError, match="exactly one buffer"):
        parse_reply(fields, [JPEG, JPEG])


def test_a_clicked_frame_is_asked_about_as_it_came(llama_server: LlamaServer) -> None:
    """The view hands the controller the frame of the click; nothing is asked of the source."""

    async def go() -> tuple[Any, int, int]:
        async with app_on(llama_server.base_url, send_size="original") as app:
            view = app.view
            requested = view.frames_requested
            taken = time.time() * 1000
            view._on_reply(view, {"kind": "ask", "seq": 1, "width": 640, "height": 480,
                                  "captured_at_ms": taken}, [memoryview(JPEG)])  # fmt: skip
            await until(lambda: len(app.history) == 1, "the answer")
            return app.history[-1], requested, view.frames_requested

    answer, before, after = run_async(go())
    assert answer.ok and answer.jpeg == JPEG and after == before
    assert answer.timing is not None and answer.timing.total_s >= answer.timing.http_s
