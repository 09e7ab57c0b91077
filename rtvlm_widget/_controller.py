"""The kernel-side loop: get a frame, ask the server, record the answer, on the kernel's event loop.

Everything here is asyncio: requests run as tasks, so the kernel keeps handling messages (and the
user keeps running cells) while an answer is on its way. It knows neither ipywidgets nor the DOM: it
talks to a frame source (the camera view) and a client, and tells listeners what happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ._client import ChatParams, VLMClient
from ._errors import VLMError
from ._protocol import Frame
from ._records import Answer
from ._tasks import spawn
from ._widget import CameraUnavailable

__all__ = ["Controller", "FrameSource"]

log = logging.getLogger("rtvlm_widget")


class FrameSource(Protocol):
    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame: ...

    def show_answer(self, seq: int, text: str) -> None: ...


AnswerListener = Callable[[Answer], None]
StatusListener = Callable[[str, str], None]


class Controller:
    """Owns the live loop, the in-flight request and the session's history."""

    def __init__(
        self,
        source: FrameSource,
        client: VLMClient,
        params: ChatParams,
        *,
        interval_s: float = 0.5,
        history_limit: int = 1000,
    ) -> None:
        self.source = source
        self.client = client
        self.params = params
        self.interval_s = interval_s
        self.history: deque[Answer] = deque(maxlen=history_limit)
        self._answer_listeners: list[AnswerListener] = []
        self._status_listeners: list[StatusListener] = []
        self._live: asyncio.Task[None] | None = None
        self._once: asyncio.Task[Answer] | None = None
        self._server_model: str | None = None

    # -- listeners -------------------------------------------------------------------------------
    def on_answer(self, listener: AnswerListener) -> None:
        self._answer_listeners.append(listener)

    def on_status(self, listener: StatusListener) -> None:
        """``listener(state, message)``; state is ``idle``, ``busy``, ``live`` or ``error``."""
        self._status_listeners.append(listener)

    def _emit_status(self, state: str, message: str = "") -> None:
        for listener in self._status_listeners:
            _call_safely(listener, state, message)

    # -- runs ------------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self._live is not None and not self._live.done()

    def send_once(self) -> asyncio.Task[Answer]:
        """Ask about one fresh frame in the background; returns the task."""
        if self._once is not None and not self._once.done():
            return self._once
        self._once = asyncio.get_running_loop().create_task(self._run_once_reporting())
        return self._once

    def start(self) -> None:
        """Ask about a fresh frame again and again, at least ``interval_s`` apart, one at a time."""
        if not self.live:
            self._live = asyncio.get_running_loop().create_task(self._live_loop())

    def stop(self) -> None:
        """Stop the live loop; the request in flight is cancelled."""
        if self._live is not None:
            self._live.cancel()
            self._live = None
            self._emit_status("idle", "stopped")

    def use_client(self, client: VLMClient) -> None:
        """Send later requests through ``client`` (new base URL or key); the old one is closed."""
        old, self.client = self.client, client
        self._server_model = None
        if old is not client:
            spawn(old.aclose())

    async def aclose(self) -> None:
        self.stop()
        if self._once is not None:
            self._once.cancel()
        await self.client.aclose()

    async def ask(self) -> Answer:
        """One request about a fresh frame; a failure comes back as an ``Answer`` with ``error``."""
        started = time.perf_counter()
        params = self.params
        seq = 0
        frame: Frame | None = None
        try:
            frame = await self.source.capture()
            seq = frame.seq
            params = await self._with_model(params)
            completion = await self.client.chat(params, [frame.jpeg])
        except Exception as exc:
            # Every failure becomes a record, never a dead loop; bugs are also logged.
            if not isinstance(exc, (VLMError, CameraUnavailable)):
                log.exception("unexpected failure while asking")
            answer = Answer(
                seq=seq,
                text="",
                prompt=params.prompt,
                model=params.model,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                latency_s=0.0,
                total_s=time.perf_counter() - started,
                frame_width=frame.width if frame else 0,
                frame_height=frame.height if frame else 0,
                jpeg=frame.jpeg if frame else b"",
                error=str(exc) or type(exc).__name__,
            )
        else:
            answer = Answer(
                seq=seq,
                text=completion.text,
                prompt=params.prompt,
                model=completion.model or params.model,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                latency_s=completion.latency_s,
                total_s=time.perf_counter() - started,
                usage=completion.usage,
                finish_reason=completion.finish_reason,
                frame_width=frame.width,
                frame_height=frame.height,
                jpeg=frame.jpeg,
            )
        self._record(answer)
        return answer

    async def _with_model(self, params: ChatParams) -> ChatParams:
        """Fill in the server's first model when none was chosen (vLLM and gateways need one)."""
        if params.model:
            return params
        if self._server_model is None:
            try:
                models = await self.client.list_models()
            except VLMError as exc:
                # llama.cpp and Ollama answer without a model id; others will say what is wrong.
                log.info("could not list models, sending without one: %s", exc)
                models = []
            self._server_model = models[0] if models else ""
        return replace(params, model=self._server_model or None)

    def _record(self, answer: Answer) -> None:
        self.history.append(answer)
        if answer.ok:
            self.source.show_answer(answer.seq, answer.text)
        for listener in self._answer_listeners:
            _call_safely(listener, answer)

    async def _run_once_reporting(self) -> Answer:
        if not self.live:
            self._emit_status("busy", "asking…")
        answer = await self.ask()
        if not self.live:
            self._emit_status("error" if answer.error else "idle", answer.error or "")
        return answer

    async def _live_loop(self) -> None:
        self._emit_status("live", "")
        failures = 0
        while True:
            started = time.perf_counter()
            answer = await self.ask()
            self._emit_status("live", answer.error or "")
            failures = failures + 1 if answer.error else 0
            # The interval is a minimum spacing between requests, never a backlog of work; after
            # failures it grows (up to 10 s) so a server that is down is not flooded.
            backoff = min(10.0, 0.5 * 2 ** (failures - 1)) if failures else 0.0
            spacing = max(self.interval_s, backoff)
            await asyncio.sleep(max(0.0, spacing - (time.perf_counter() - started)))


def _call_safely(fn: Callable[..., None], *args: object) -> None:
    """A failing listener is logged, never allowed to stop the loop."""
    try:
        fn(*args)
    except Exception:
        log.exception("listener %r failed", fn)
