"""The controller against the real llama-server, with frames from a fixed JPEG instead of a browser."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from rtvlm_widget import Answer, CameraUnavailable, ChatParams, Frame, VLMClient
from rtvlm_widget._controller import Controller
from tests.aio import run_async
from tests.servers.llama import LlamaServer
from tests.servers.scripted import GatedServer
from tests.servers.trickle import TrickleServer


class StillCamera:
    """A frame source that always shows the same picture (or fails, when told to)."""

    def __init__(self) -> None:
        image = np.full((240, 320, 3), (40, 120, 200), np.uint8)
        self.jpeg = bytes(cv2.imencode(".jpg", image)[1])
        self.fail_with: str | None = None
        self.shown: list[tuple[int, str]] = []
        self._seq = 0

    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame:
        self._seq += 1
        if self.fail_with:
            raise CameraUnavailable(self.fail_with)
        return Frame(seq=self._seq, jpeg=self.jpeg, width=320, height=240)

    def watch(self, controller: Controller) -> None:
        """Show answers as a view does: subscribed to the controller's partials and answers."""
        controller.on_partial(lambda seq, text: self.shown.append((seq, text)))
        controller.on_answer(lambda answer: self.shown.append((answer.seq, answer.text)))


def _controller(server: LlamaServer, camera: StillCamera, **kwargs: Any) -> Controller:
    params = ChatParams(prompt="What is this?", max_tokens=5, temperature=0)
    return Controller(camera, VLMClient(server.base_url), params, **kwargs)


def test_ask_records_answers_and_picks_the_servers_model(llama_server: LlamaServer) -> None:
    camera = StillCamera()
    seen: list[Answer] = []
    revised: list[Answer] = []

    async def go() -> list[Answer]:
        controller = _controller(llama_server, camera, history_limit=2)
        camera.watch(controller)
        controller.on_answer(seen.append)
        controller.on_revised(revised.append)
        try:
            return [await controller.ask() for _ in range(3)]
        finally:
            await controller.aclose()

    answers = run_async(go())
    assert [a.seq for a in answers] == [1, 2, 3]
    assert all(a.ok and a.text and a.model == "tiny-vlm" for a in answers)
    assert all(a.usage is not None and a.usage.completion_tokens == 5 for a in answers)
    assert answers[0].jpeg == camera.jpeg and answers[0].frame_width == 320
    # The first answer of a prompt is shown before its image tokens are known (a text-only request
    # tells them, after it); the answer returned and later ones have them.
    assert seen[0] == replace(answers[0], image_tokens=None) and seen[1:] == answers[1:]
    # ... and the listeners hear of it once it is known (the panel's status line says it then).
    assert revised == [answers[0]]
    assert all(a.image_tokens is not None for a in answers)
    # The view ends up showing each answer in full (streamed pieces may come first).
    assert dict(camera.shown) == {a.seq: a.text for a in answers}


def test_failures_become_records_and_listener_errors_do_not_stop_the_loop(
    llama_server: LlamaServer,
) -> None:
    camera = StillCamera()

    def broken_listener(answer: Answer) -> None:
        raise RuntimeError("user callback bug")

    async def go() -> tuple[Answer, Answer, int]:
        controller = _controller(llama_server, camera)
        controller.on_answer(broken_listener)
        try:
            camera.fail_with = "camera permission denied"
            failed = await controller.ask()
            camera.fail_with = None
            ok = await controller.ask()
            return failed, ok, len(controller.history)
        finally:
            await controller.aclose()

    failed, ok, kept = run_async(go())
    assert failed.error == "camera permission denied" and failed.text == ""
    assert ok.ok and ok.text
    assert kept == 2


def test_live_loop_runs_one_request_at_a_time(llama_server: LlamaServer) -> None:
    camera = StillCamera()

    async def go() -> list[Answer]:
        controller = _controller(llama_server, camera, interval_s=0)
        controller.start()

        async def three_answers() -> None:
            while len(controller.history) < 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(three_answers(), 60)
        controller.stop()
        await controller.aclose()
        return list(controller.history)

    answers = run_async(go())
    count = len(answers)
    assert count >= 3
    # One request at a time, each frame used once, at most one frame fetched ahead of its turn
    # (plus one possibly in flight when stopped).
    assert [a.seq for a in answers] == sorted({a.seq for a in answers})
    assert camera._seq <= answers[-1].seq + 2
    # Back to back, the next frame is fetched while the current request runs, and used.
    assert any(a.prefetched for a in answers[1:])


def test_partial_answers_stream_to_listeners() -> None:
    camera = StillCamera()
    partials: list[tuple[int, str]] = []
    tokens = ["one", " two", " three", " four"]

    async def go(url: str) -> Answer:
        controller = Controller(camera, VLMClient(url), ChatParams(prompt="count", model="trickle"))
        controller.on_partial(lambda seq, text: partials.append((seq, text)))
        try:
            return await controller.ask()
        finally:
            await controller.aclose()

    with TrickleServer(tokens, gap_s=0.1) as server:
        answer = run_async(go(server.base_url))
    assert answer.text == "one two three four"
    assert answer.first_token_s is not None and answer.first_token_s < answer.latency_s
    # Growing prefixes arrived while the answer streamed (not only the whole text at the end).
    assert len(partials) >= 2
    assert all(seq == answer.seq and answer.text.startswith(text) for seq, text in partials)
    assert partials[0][1] != answer.text


def test_slow_answer_does_not_queue_frames_and_a_change_cancels_it() -> None:
    camera = StillCamera()

    async def go(server: GatedServer) -> tuple[int, int, bool, Answer]:
        client = VLMClient(server.base_url)
        controller = Controller(camera, client, ChatParams(prompt="first", model="gated"), interval_s=0)
        controller.start()
        await asyncio.to_thread(server.received.wait, 10)
        await asyncio.sleep(0.5)  # a slow answer: the loop must wait, not take more frames
        frames_while_held = camera._seq
        server.hold()
        controller.params = replace(controller.params, prompt="second")
        await asyncio.to_thread(server.received.wait, 10)
        hung_up = await asyncio.to_thread(server.hung_up.wait, 10)
        server.release()
        while not controller.history:
            await asyncio.sleep(0.01)
        controller.stop()
        await controller.aclose()
        return frames_while_held, len(server.requests), hung_up, controller.history[0]

    with GatedServer("late") as server:
        frames, requests, hung_up, first = run_async(go(server))
    assert frames <= 2  # one frame in flight, at most one fetched ahead; nothing queues
    assert hung_up  # the old request's connection was closed by the change
    assert requests >= 2
    # The frame fetched ahead while the slow answer was held had grown old: a fresh one was used.
    assert not first.prefetched and first.ok


def test_multi_frame_requests_carry_the_last_n_frames(llama_server: LlamaServer) -> None:
    camera = StillCamera()

    async def go() -> tuple[Answer, Answer]:
        controller = _controller(llama_server, camera)
        try:
            single = await controller.ask()
            controller.frames_per_request, controller.frame_spacing_s = 3, 0.05
            triple = await controller.ask()
            return single, triple
        finally:
            await controller.aclose()

    single, triple = run_async(go())
    assert single.ok and triple.ok, (single.error, triple.error)
    assert single.usage is not None and triple.usage is not None
    # Each image costs the generated model 16 prompt tokens: two more images, 32 more tokens.
    assert triple.usage.prompt_tokens - single.usage.prompt_tokens == 2 * 16
    assert triple.frames_sent == 3 and single.frames_sent == 1
