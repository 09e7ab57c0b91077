"""The kernel-side loop: get a frame, ask the server, record the answer, on the kernel's event loop.

Everything here is asyncio: requests run as tasks, so the kernel keeps handling messages (and the
user keeps running cells) while an answer is on its way. It knows neither ipywidgets nor the DOM: it
talks to a frame source (the camera view) and a client, and tells listeners what happened.

Live mode runs ``max_in_flight`` workers. Each takes a turn (turns start at least ``interval_s``
apart) and sends a frame taken for that turn: the next turn's frame is asked for so that it arrives
as the turn starts (``_prefetch.py``), and one that had to wait is dropped for a fresh one. The
newest frame wins by construction and nothing queues. Stop, and any change of the parameters,
cancel the requests in flight (their connections are closed); cancelled requests leave no record.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from ._chat import ChatParams, Completion
from ._client import VLMClient
from ._costs import ImageCost, SendSize, SizedSource
from ._errors import AnswerCutOff, CameraUnavailable, ServerUnreachable, ThinkingUnfinished, VLMError
from ._prefetch import Prefetcher
from ._protocol import Frame
from ._readers import SourceEnded
from ._records import Answer, Timing
from ._sampler import FrameSampler
from ._schema import parse_structured
from ._sendsize import ORIGINAL, ProbeResult, probe_send_sizes
from ._shapes import Shape, parse_shapes
from ._tasks import spawn

__all__ = ["Controller", "FrameSource"]

log = logging.getLogger("rtvlm_widget")

#: Partial answers are shown at most this often (a token can arrive every millisecond).
PARTIAL_EVERY_S = 0.05
#: Send once says "asking…" only when its answer takes longer than this.
BUSY_AFTER_S = 0.25


class FrameSource(Protocol):
    """Where frames come from (the browser camera view, a kernel-side source); views that show
    answers subscribe to ``on_answer`` / ``on_partial`` instead."""

    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame: ...


AnswerListener = Callable[[Answer], None]
PartialListener = Callable[[int, str], None]
StatusListener = Callable[[str, str], None]


class Controller:
    """Owns the live loop, the requests in flight and the session's history."""

    def __init__(
        self,
        source: FrameSource,
        client: VLMClient,
        params: ChatParams,
        *,
        interval_s: float = 0.5,
        max_in_flight: int = 1,
        frames_per_request: int = 1,
        frame_spacing_s: float = 0.5,
        history_limit: int = 1000,
        send_size: object = ORIGINAL,
    ) -> None:
        #: The longest edge frames are sent at (auto: probed per server and model).
        self.send_size = SendSize(send_size)
        self.source = SizedSource(source, self.send_size)
        self.costs = ImageCost()
        self._probing = False
        self.client = client
        self._params = params
        self.interval_s = interval_s
        self.max_in_flight = max_in_flight
        #: More than 1: each request carries the last N frames, ``frame_spacing_s`` apart.
        self.frames_per_request = frames_per_request
        self.frame_spacing_s = frame_spacing_s
        self._sampler: FrameSampler | None = None
        self._prefetch = Prefetcher(self.source)
        #: Live mode: ask for the next turn's frame ahead of time (False: only once the turn began).
        self.prefetch = True
        self.history: deque[Answer] = deque(maxlen=history_limit)
        self._answer_listeners: list[AnswerListener] = []
        self._revised_listeners: list[AnswerListener] = []
        self._partial_listeners: list[PartialListener] = []
        self._reasoning_listeners: list[PartialListener] = []
        self._status_listeners: list[StatusListener] = []
        self._live: asyncio.Task[None] | None = None
        self._once: asyncio.Task[Answer] | None = None
        self._once_shown = False
        self._inflight: set[asyncio.Task[Answer]] = set()
        self._server_model: str | None = None
        self._next_turn = 0.0
        self._failures = 0
        #: (base_url, model) whose background probe failed: not retried on every answer.
        self._probe_failed: tuple[str, str | None] | None = None
        #: When each request in flight was sent (``waiting_s``), and whether the server looks down.
        self._open_since: dict[object, float] = {}
        self._down = False

    # -- parameters ------------------------------------------------------------------------------
    @property
    def params(self) -> ChatParams:
        return self._params

    @params.setter
    def params(self, value: ChatParams) -> None:
        changed = value != self._params
        self._params = value
        if changed:
            # An answer to the old question is no longer wanted: free the slot for the new one.
            self.cancel_inflight()

    def cancel_inflight(self) -> None:
        """Cancel the live requests in flight (closing their connections); the loop goes on."""
        for task in list(self._inflight):
            task.cancel()

    # -- listeners -------------------------------------------------------------------------------
    def on_answer(self, listener: AnswerListener) -> None:
        self._answer_listeners.append(listener)

    def on_revised(self, listener: AnswerListener) -> None:
        """``listener(answer)`` when a recorded answer learns more after it was shown (its image
        tokens, asked after the answer); ``answer.seq`` names the one it replaces."""
        self._revised_listeners.append(listener)

    def on_partial(self, listener: PartialListener) -> None:
        """``listener(seq, text_so_far)`` while an answer streams in."""
        self._partial_listeners.append(listener)

    def on_reasoning(self, listener: PartialListener) -> None:
        """``listener(seq, reasoning_so_far)`` while a thinking model's reasoning streams in
        (servers that send it apart from the answer)."""
        self._reasoning_listeners.append(listener)

    def on_status(self, listener: StatusListener) -> None:
        """``listener(state, message)``; state is ``idle``, ``busy``, ``live``, ``error``,
        ``retrying`` (live, the server is down: ``message`` says when the next try is) or
        ``stopped`` (live mode stopped by itself: ``message`` says why)."""
        self._status_listeners.append(listener)

    def _emit_status(self, state: str, message: str = "") -> None:
        for listener in self._status_listeners:
            _call_safely(listener, state, message)

    # -- runs ------------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self._live is not None and not self._live.done()

    def send_once(self, frame: Frame | None = None) -> asyncio.Task[Answer]:
        """Ask about one fresh frame in the background (``frame``: the one the page took at the
        click; None: take one now); returns the task."""
        # A click while the last one's answer is still coming is the same request; once that
        # answer is shown (its image tokens may still be asked), a click is a new one.
        if self._once is not None and not self._once.done() and not self._once_shown:
            return self._once
        self._once_shown = False
        self._once = asyncio.get_running_loop().create_task(self._run_once_reporting(frame))
        return self._once

    def start(self) -> None:
        """Ask about fresh frames again and again, turns at least ``interval_s`` apart."""
        if not self.live:
            self._live = asyncio.get_running_loop().create_task(self._live_loop())

    def stop(self, reason: str | None = None) -> None:
        """Stop the live loop; the requests in flight are cancelled. ``reason``: why live mode
        stopped by itself (status ``stopped``; a person's Stop says ``idle``)."""
        if self._live is not None:
            self._live.cancel()
            self._live = None
            self._close_sampler()
            self._prefetch.cancel()
            if reason:
                self._emit_status("stopped", reason)
            else:
                self._emit_status("idle", "stopped")

    @property
    def waiting_s(self) -> float:
        """Seconds the oldest request in flight has been waiting for its answer (0: none)."""
        if not self._open_since:
            return 0.0
        return time.perf_counter() - min(self._open_since.values())

    def use_client(self, client: VLMClient) -> None:
        """Send later requests through ``client`` (new base URL or key); the old one is closed."""
        old, self.client = self.client, client
        self._server_model = None
        # A new server or key deserves a prompt try: forget the old one's failures and Retry-After.
        self._failures, self._next_turn, self._down = 0, 0.0, False
        if old is not client:
            self.cancel_inflight()
            spawn(old.aclose())

    async def aclose(self) -> None:
        self.stop()
        if self._once is not None:
            self._once.cancel()
        await self.client.aclose()

    async def ask(
        self, *, waited_s: float = 0.0, frame: Frame | None = None, shown: Callable[[], None] | None = None
    ) -> Answer:
        """One request about a fresh frame (or ``frame``), recorded; a failure comes back as an
        ``Answer`` with ``error``. ``waited_s`` is how long the caller waited for its turn
        (recorded in the timing).
        """
        frames = [frame] if frame is not None and self.frames_per_request <= 1 else None
        answer, asked = await self._request(waited_s=waited_s, frames=frames)
        self.record(answer)
        if shown is not None:
            shown()
        if asked is None:
            return answer
        # Image tokens that only a text-only request can tell: asked now, after the answer is
        # shown, in the same request slot (no answer waits, no more requests open than allowed).
        filled = await self._fill_cost(answer, *asked)
        if filled is not answer:
            self._update_recent(lambda a: a is answer, lambda _a: filled)
            for listener in self._revised_listeners:
                _call_safely(listener, filled)
        return filled

    async def _fill_cost(self, answer: Answer, client: VLMClient, params: ChatParams) -> Answer:
        size = (answer.frame_width, answer.frame_height)
        cost = await self.costs.fill(client, params, answer.usage, answer.frames_sent, size)
        return answer if cost is None else replace(answer, image_tokens=cost)

    async def request(
        self,
        params: ChatParams | None = None,
        *,
        client: VLMClient | None = None,
        frames: list[Frame] | None = None,
        waited_s: float = 0.0,
    ) -> Answer:
        """One request, not recorded: about ``frames`` (default: fresh ones from the source), with
        ``params`` (default: the current ones), through ``client`` (default: this controller's —
        another one when the caller runs on another event loop). The answer comes back whole,
        with its image tokens (a text-only request first tells them when nothing else can)."""
        answer, asked = await self._request(params, client=client, frames=frames, waited_s=waited_s)
        return answer if asked is None else await self._fill_cost(answer, *asked)

    async def _request(
        self,
        params: ChatParams | None = None,
        *,
        client: VLMClient | None = None,
        frames: list[Frame] | None = None,
        waited_s: float = 0.0,
    ) -> tuple[Answer, tuple[VLMClient, ChatParams] | None]:
        """``request``, and the client and parameters to ask the image tokens with when the answer
        does not know them yet (None: it does, or it failed)."""
        started = time.perf_counter()
        params = params or self.params
        # The prefetcher and the multi-frame sampler live on this controller's loop: a caller on
        # another loop (its own client) takes one fresh frame directly.
        foreign_loop = client is not None and client is not self.client
        client = client or self.client
        prefetched = False
        frames = list(frames or [])
        try:
            params = await self._with_model(params, client)
            if not foreign_loop:
                # Never in the way of an answer: until the probe has chosen, frames go at the
                # last known size (the original at first).
                self.probe_in_background(params)
            elif (
                not frames and not self._probing and self.send_size.needs_probe(client.base_url, params.model)
            ):
                # A blocking ask() before the panel could measure (e.g. in the cell that made
                # the app, or a plain script): the cell waits anyway, so measure first.
                await self.probe_send_size(client, params)
            if not frames and foreign_loop:
                frames = [await self.source.capture()]
            elif not frames:
                frames, prefetched = await self._frames()
            frame = frames[-1]
            images = [f.jpeg for f in frames]
            on_text = self._partials(frame.seq, at_once=not self.live)
            on_reasoning = self._partials(
                frame.seq, at_once=not self.live, listeners=self._reasoning_listeners
            )
            token = object()
            self._open_since[token] = time.perf_counter()
            try:
                completion = await client.chat(params, images, on_text=on_text, on_reasoning=on_reasoning)
            finally:
                del self._open_since[token]
            # Nothing at all (whitespace is an answer a small model may give): never shown empty.
            if completion.finish_reason == "length" and (completion.thought_only or not completion.text):
                raise _no_answer(client.url("/v1/chat/completions"), params, completion)
            size = (frame.width, frame.height)
            cost = self.costs.per_frame(client, params, completion.usage, len(frames), size)
        except Exception as exc:
            # Every failure becomes a record, never a dead loop; bugs are also logged.
            if not isinstance(exc, (VLMError, CameraUnavailable)):
                log.exception("unexpected failure while asking")
            error = str(exc) or type(exc).__name__
            # What came back before the failure is kept (e.g. a thinking model's reasoning).
            kept = exc.completion if isinstance(exc, ThinkingUnfinished) else None
            answer = _answer(params, frames, kept, started, waited_s, error=error, exception=exc)
            if isinstance(exc, AnswerCutOff) and exc.partial_text:
                answer = replace(answer, text=exc.partial_text)  # a fragment: ``error`` says so
            return answer, None
        answer = _answer(
            params, frames, completion, started, waited_s, prefetched=prefetched, image_tokens=cost
        )
        return answer, (client, params) if cost is None and completion.usage is not None else None

    def probe_in_background(self, params: ChatParams | None = None) -> None:
        """Start the send-size probe for this server and model when auto mode has not measured it
        yet (and none runs); answers meanwhile use the last known size. Its failures are logged."""
        params = params or self.params
        if not params.model and self._server_model:
            params = replace(params, model=self._server_model)
        if self._probing or not self.send_size.needs_probe(self.client.base_url, params.model):
            return
        if self._probe_failed == (self.client.base_url, params.model):
            return  # tried for this server and model already: Test API tries again
        self._probing = True  # at once, so two requests in a row start one probe
        if spawn(self._background_probe(params)) is None:
            self._probing = False

    async def _background_probe(self, params: ChatParams) -> None:
        target = (self.client.base_url, params.model)
        try:
            await self.probe_send_size(params=params)
        except CameraUnavailable as exc:
            log.info("send-size probe waits for a frame: %s", exc)  # tried again at the next answer
        except VLMError as exc:
            self._probe_failed = target
            log.info("send-size probe failed, sending the original size: %s", exc)
        except Exception:
            self._probe_failed = target
            log.exception("send-size probe failed")

    async def probe_send_size(
        self, client: VLMClient | None = None, params: ChatParams | None = None
    ) -> ProbeResult:
        """Send a fresh frame at several sizes (``max_tokens`` 1) and, in auto mode, use the
        chosen size from now on for this server and model. Returns the probe's table."""
        client = client or self.client
        self._probing = True
        self.send_size.set_measuring(True)
        try:
            params = await self._with_model(params or self.params, client)
            frame = await self.source.capture_original()
            result = await probe_send_sizes(client, params, frame.jpeg)
        finally:
            self._probing = False
            self.send_size.set_measuring(False)
        self.costs.remember(client, params, result)
        self.send_size.set_probe(result, client.base_url, params.model)
        return result

    async def _frames(self) -> tuple[list[Frame], bool]:
        """The frame(s) for one request (one fresh frame, or the sampler's last N), and whether
        the frame was prefetched."""
        if self.frames_per_request <= 1:
            self._close_sampler()
            if not self.live or not self.prefetch:
                return [await self.source.capture()], False
            frame = await self._prefetch.take()
            prefetched = frame is not None
            frame = frame or await self.source.capture()
            # The next turn's frame is asked for now, to arrive as that turn starts.
            self._prefetch.schedule(self._next_turn)
            return [frame], prefetched
        sampler = self._sampler
        if sampler is None or (sampler.count, sampler.spacing_s) != (
            self.frames_per_request,
            self.frame_spacing_s,
        ):
            self._close_sampler()
            sampler = self._sampler = FrameSampler(self.source, self.frames_per_request, self.frame_spacing_s)
        return await sampler.frames(), False

    def _close_sampler(self) -> None:
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None

    def record_display(self, seq: int, shown_at: float) -> None:
        """The browser showed answer ``seq`` at ``shown_at`` (epoch s): fill in its display time."""

        def shown(answer: Answer) -> Answer:
            assert answer.timing is not None
            display = max(0.0, shown_at - answer.created_at)
            return replace(answer, timing=replace(answer.timing, display_s=display))

        self._update_recent(lambda a: a.seq == seq and a.timing is not None, shown)

    def _update_recent(self, match: Callable[[Answer], bool], update: Callable[[Answer], Answer]) -> None:
        """Replace the newest of the last 50 answers that ``match`` with ``update(answer)``."""
        for index in range(len(self.history) - 1, max(-1, len(self.history) - 50), -1):
            if match(self.history[index]):
                self.history[index] = update(self.history[index])
                return

    def _partials(
        self, seq: int, *, at_once: bool, listeners: list[PartialListener] | None = None
    ) -> Callable[[str], None]:
        # Partial texts go out at most every PARTIAL_EVERY_S: each costs a comm message and CPU
        # in the kernel, Jupyter's server and the page, and the whole answer follows anyway.
        # ``at_once``: the first text goes out as it comes (what a person waits for after a click).
        # In live mode it waits like the rest: an answer done within PARTIAL_EVERY_S sends no
        # partial at all (a message less per frame), and the last answer is not replaced by a
        # word or two of the next one.
        last = -PARTIAL_EVERY_S if at_once else time.perf_counter()

        def on_text(text: str) -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last < PARTIAL_EVERY_S:
                return
            last = now
            for listener in self._partial_listeners if listeners is None else listeners:
                _call_safely(listener, seq, text)

        return on_text

    async def _with_model(self, params: ChatParams, client: VLMClient) -> ChatParams:
        """Fill in the server's first model when none was chosen (vLLM and gateways need one)."""
        if params.model:
            return params
        if self._server_model is None:
            try:
                models = await client.list_models()
            except ServerUnreachable:
                raise  # the request would fail the same way; nothing is remembered, next time asks again
            except VLMError as exc:
                # llama.cpp and Ollama answer without a model id; others will say what is wrong.
                log.info("could not list models, sending without one: %s", exc)
                models = []
            self._server_model = models[0] if models else ""
        return replace(params, model=self._server_model or None)

    def record(self, answer: Answer) -> None:
        """Keep ``answer`` in the history, show it and tell the listeners."""
        self.history.append(answer)
        for listener in self._answer_listeners:
            _call_safely(listener, answer)

    async def _run_once_reporting(self, frame: Frame | None = None) -> Answer:
        def answered() -> None:
            self._once_shown = True

        request = asyncio.ensure_future(self.ask(frame=frame, shown=answered))
        busy = None
        if not self.live:
            # "asking…" only for an answer that is slow to come: its widget messages would
            # otherwise take the page's and the server's CPU just while the model works (on a
            # small machine that slowed the model's own time by half).
            loop = asyncio.get_running_loop()
            busy = loop.call_later(BUSY_AFTER_S, self._emit_status, "busy", "asking…")
        try:
            answer = await request
        finally:
            request.cancel()  # when this task is cancelled (close()), so is the request
            if busy is not None:
                busy.cancel()
        if not self.live:
            self._close_sampler()  # it keeps pulling frames only while answers are wanted
            self._emit_status("error" if answer.error else "idle", answer.error or "")
        return answer

    # -- live mode -------------------------------------------------------------------------------
    async def _live_loop(self) -> None:
        self._emit_status("live", "")
        self._failures = 0
        turn = asyncio.Lock()
        workers = [asyncio.create_task(self._worker(turn)) for _ in range(max(1, self.max_in_flight))]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def _take_turn(self, turn: asyncio.Lock) -> float:
        """Wait until the next request may start (turns are spaced, never stacked up); seconds waited."""
        began = time.perf_counter()
        async with turn:
            # Re-checked in short steps: a Retry-After may push the turn later meanwhile, a new
            # client bring it forward.
            said = 0
            while (delay := self._next_turn - time.perf_counter()) > 0:
                if not self._down:
                    await asyncio.sleep(min(delay, 0.25))
                    continue
                if math.ceil(delay) != said:
                    said = math.ceil(delay)
                    self._emit_status("retrying", f"retrying in {said} s")
                # While the server is down, a cheap look every second: once it is back, answers
                # resume at once instead of after a pause grown to 10 s.
                if await self._server_back(timeout=min(1.0, delay)):
                    self._down, self._next_turn = False, time.perf_counter()
                    break
            self._next_turn = time.perf_counter() + self.interval_s
        return time.perf_counter() - began

    async def _server_back(self, timeout: float) -> bool:
        """Whether ``GET /v1/models`` answers within ``timeout`` (sleeping out the rest of it)."""
        began = time.perf_counter()
        try:
            await asyncio.wait_for(self.client.list_models(), timeout)
            return True
        except (VLMError, asyncio.TimeoutError):
            pass
        except Exception:
            log.exception("checking whether the server is back failed")
        await asyncio.sleep(max(0.0, timeout - (time.perf_counter() - began)))
        return False

    async def _worker(self, turn: asyncio.Lock) -> None:
        while True:
            waited = await self._take_turn(turn)
            request = asyncio.create_task(self.ask(waited_s=waited))
            self._inflight.add(request)
            try:
                await asyncio.wait({request})
            finally:
                self._inflight.discard(request)
                request.cancel()  # no-op when done; closes the connection when we are stopped
            if request.cancelled():
                continue  # superseded by a parameter change
            answer = request.result()
            if isinstance(answer.exception, SourceEnded):
                # A file played to its end (loop=False) gives no more frames: stop, don't retry.
                asyncio.get_running_loop().call_soon(self.stop)
                return
            self._failures = self._failures + 1 if answer.error else 0
            exc = answer.exception
            if isinstance(exc, VLMError) and exc.permanent:
                # Asking again would fail the same way: stop and say what to do.
                asyncio.get_running_loop().call_soon(self.stop, answer.error)
                return
            self._down = isinstance(exc, ServerUnreachable) or (
                isinstance(exc, VLMError) and exc.status is not None and exc.status >= 500
            )
            if answer.error:
                # From the failure on, the next turn waits 0.5 s, 1 s, 2 s … (up to 10 s) so a server
                # that is down is not flooded, or as long as the server asked (Retry-After).
                backoff = min(10.0, 0.5 * 2 ** (self._failures - 1))
                asked = getattr(answer.exception, "retry_after", None) or 0.0
                self._next_turn = max(self._next_turn, time.perf_counter() + max(backoff, asked))
            self._emit_status("live", answer.error or "")


def _answer(
    params: ChatParams,
    frames: list[Frame],
    completion: Completion | None,
    started: float,
    waited_s: float,
    *,
    error: str | None = None,
    exception: BaseException | None = None,
    prefetched: bool = False,
    image_tokens: int | None = None,
) -> Answer:
    frame = frames[-1] if frames else None
    # A frame the page sent with the click was on its way before the kernel started: count it.
    total = time.perf_counter() - started + (frame.roundtrip_s if frame is not None and frame.pushed else 0.0)
    data, data_error, shapes = _structure(params, completion, frame)
    timing = None
    server = completion.server if completion else None
    if frame is not None:
        draw, encode = frame.draw_ms / 1000, frame.encode_ms / 1000
        timing = Timing(
            wait_s=waited_s,
            capture_s=draw,
            encode_s=encode,
            transfer_s=max(0.0, frame.roundtrip_s - draw - encode),
            first_token_s=completion.first_token_s if completion else None,
            http_s=completion.latency_s if completion else 0.0,
            total_s=total,
            server_prefill_s=server.prefill_s if server else None,
            server_decode_s=server.decode_s if server else None,
            first_reasoning_s=completion.first_reasoning_s if completion else None,
        )
    return Answer(
        seq=frame.seq if frame else 0,
        text=completion.text if completion else "",
        # Sent without a model (the server's default): the one it says answered is filled in.
        params=params if params.model or not completion else replace(params, model=completion.model),
        served_model=completion.model if completion else None,
        latency_s=completion.latency_s if completion else 0.0,
        total_s=total,
        first_token_s=completion.first_token_s if completion else None,
        usage=completion.usage if completion else None,
        image_tokens=image_tokens,
        data=data,
        data_error=data_error,
        shapes=shapes,
        finish_reason=completion.finish_reason if completion else None,
        frame_width=frame.width if frame else 0,
        frame_height=frame.height if frame else 0,
        jpeg=frame.jpeg if frame else b"",
        error=error,
        exception=exception.with_traceback(None) if exception is not None else None,
        frames_sent=len(frames),
        prefetched=prefetched,
        captured_at=frame.captured_at_ms / 1000 if frame else 0.0,
        timing=timing,
        reasoning=completion.reasoning if completion else "",
        logprobs=completion.logprobs if completion else (),
    )


def _no_answer(url: str, params: ChatParams, completion: Completion) -> ThinkingUnfinished:
    """The error for an answer cut at ``max_tokens`` before any of its text: never shown empty."""
    if completion.thought_only:
        what = "thinking and gave no answer"
    else:
        # Nothing arrived at all: servers hold back a half-written <think> tag, or keep the
        # reasoning to themselves.
        what = "before any answer text (a thinking model spends them thinking)"
    return ThinkingUnfinished(
        f"{url} used all {params.max_tokens} tokens (max tokens) {what}: raise Max tokens, or "
        "switch Thinking off for real-time answers",
        url=url,
        status=200,
        completion=completion,
    )


def _structure(
    params: ChatParams, completion: Completion | None, frame: Frame | None
) -> tuple[Any, str | None, tuple[Shape, ...]]:
    """The answer's parsed data (with a schema), why it is invalid, and the boxes/points in it."""
    if completion is None:
        return None, None, ()
    data, error = None, None
    if params.schema is not None:
        data, error = parse_structured(completion.text, params.schema, finish_reason=completion.finish_reason)
    size = (frame.width, frame.height) if frame is not None else None
    try:
        found = parse_shapes(
            data if data is not None else completion.text, image_size=size, schema=params.schema
        )
    except ValueError:
        found = None  # pixel coordinates without a frame size: nothing to place
    return data, error, tuple(found or ())


def _call_safely(fn: Callable[..., None], *args: object) -> None:
    """A failing listener is logged, never allowed to stop the loop."""
    try:
        fn(*args)
    except Exception:
        log.exception("listener %r failed", fn)
