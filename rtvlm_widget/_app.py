"""``RealtimeVLM``: the public object a notebook creates and displays. It composes, thinly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from ._blocking import run_blocking
from ._chat import ChatParams
from ._client import VLMClient, redact_url
from ._compare import Comparison, Job, frame_from, plan_compare, plan_replay, run_grid
from ._conditions import Condition, Event, Events
from ._controller import Controller
from ._costs import parse_send_size
from ._history import History, load_session
from ._panel import Panel
from ._protocol import Frame
from ._records import Answer
from ._schema import to_schema
from ._sendsize import ProbeResult
from ._sources import KernelSource, open_source
from ._static import show
from ._tasks import bound_to_loop, spawn
from ._watch import Watcher
from ._watchpanel import WatchSection
from ._widget import CameraView

T = TypeVar("T")

#: What ``ask(**overrides)`` may change for one call.
_OVERRIDABLE = tuple(f.name for f in dataclasses.fields(ChatParams) if f.name != "prompt")

__all__ = ["RealtimeVLM"]


class RealtimeVLM:
    """A live camera panel in a notebook cell that asks a vision-language model about each frame.

    Display it (make it the last expression of a cell) to show the camera preview, Start/Stop,
    Send once, the prompt and the latest answer. The server is any OpenAI-compatible one
    (llama.cpp ``llama-server``, vLLM, Ollama's ``/v1``, SGLang, TGI, hosted gateways).

    Args:
        base_url: server root, with or without ``/v1`` (``http://localhost:8080``,
            ``http://localhost:11434/v1``).
        model: model id; ``None`` takes the first one the server lists.
        prompt: the question asked about every frame.
        api_key: sent as ``Authorization: Bearer …``; defaults to ``$OPENAI_API_KEY``. It stays in
            the kernel: never synced to the browser, saved in the notebook or printed.
        max_tokens: answer length limit.
        temperature: sampling temperature.
        thinking: thinking models (Qwen3-VL, GLM-4.xV, MiMo-VL, …): ``False`` asks the server to
            answer without thinking first (the fastest answers), ``True`` to think, ``None``
            (default) leaves it to the server. Reasoning is kept in ``Answer.reasoning``, never
            in the answer text or over the video.
        interval: minimum seconds between the starts of live requests.
        max_in_flight: live requests allowed at once (1; more for servers with parallel slots).
        stream: show answers token by token as the server streams them.
        frames_per_request: more than 1 sends the last N frames, ``frame_spacing`` seconds
            apart, as N images in one message (for questions about motion).
        frame_spacing: seconds between the frames of a multi-frame request.
        history_limit: answers kept in ``history`` (oldest dropped first), frames included.
        send_size: longest edge (px) of the JPEG sent — ``"auto"`` (default: probe the server
            once per model and send the largest size that costs no more image tokens than the
            smallest), ``"original"`` / 0 (as the camera gives it), or e.g. 512.
        source: where frames come from. ``None``: the browser's camera. Otherwise read by the
            kernel with OpenCV and shown in the panel's preview: a video file path, a stream URL
            (``rtsp://…``, ``http://…/x.mjpg``), a camera index on the kernel's machine, a folder
            of images, a list of BGR arrays, or ``open_source(…)`` for more options. Files loop.
        realtime: files play at their own rate, frames skipped while the model answers; False:
            each request takes the next frame.
        timeout: seconds to wait for the server's next bytes before giving up on a request
            (connecting: at most 5 s); raise it for slow models on slow machines.

    Settings out of range (an empty or non-http(s) ``base_url``, a negative ``interval``,
    ``max_tokens`` below 1, ``temperature`` outside 0–2, …) raise ``ValueError`` saying why.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        model: str | None = None,
        prompt: str = "What do you see?",
        *,
        api_key: str | None = None,
        max_tokens: int = 100,
        temperature: float = 0.2,
        interval: float = 0.5,
        max_in_flight: int = 1,
        stream: bool = True,
        frames_per_request: int = 1,
        frame_spacing: float = 0.5,
        history_limit: int = 1000,
        source: object = None,
        realtime: bool = True,
        send_size: int | str = "auto",
        schema: object = None,
        timeout: float = 120.0,
        thinking: bool | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        # Refused before anything is built or sent: the URL, the ranges, the run settings.
        client = VLMClient(base_url, api_key=key, timeout=timeout)
        params = ChatParams(
            prompt=prompt,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=stream,
            schema=to_schema(schema) if schema is not None else None,
            thinking=thinking,
        )
        _check_run_settings(interval, max_in_flight, frames_per_request, frame_spacing, history_limit)
        parse_send_size(send_size)
        self.view = CameraView()
        #: The controller's frames: the browser camera (the view) or a kernel-side source.
        self._source: CameraView | KernelSource = (
            self.view if source is None else open_source(source, view=self.view, realtime=realtime)
        )
        self._controller = Controller(
            self._source,
            client,
            params,
            interval_s=interval,
            max_in_flight=max_in_flight,
            frames_per_request=frames_per_request,
            frame_spacing_s=frame_spacing,
            history_limit=history_limit,
            send_size=send_size,
        )
        # The prefetch hides the browser's round trip. A kernel source reads locally, and a frame it
        # read ahead but that went unused (too old) would be skipped: with realtime=False each
        # capture is the next frame.
        self._controller.prefetch = source is None
        # The view shows every answer (overlay, answer box, boxes) first, before the panel's readouts.
        self._controller.on_partial(self.view.show_partial)
        self._controller.on_answer(self.view.show_final)
        self._controller.on_reasoning(self.view.show_thinking)
        self.view.on_shown(bound_to_loop(self._controller.record_display))
        self._panel = Panel(
            self.view,
            self._controller,
            make_client=lambda url, secret: VLMClient(url, api_key=secret, timeout=timeout),
            api_key=key,
        )
        # Watched conditions ("Tell me when…"): asked in live mode beside the captions, every
        # ``watcher.every`` seconds, about a frame of their own; their section sits under the log.
        self._watcher = Watcher(
            lambda params, frame: self._controller.request(params, frames=[frame]),
            lambda: self._controller.params,
        )
        self._watching: asyncio.Task[None] | None = None
        self._controller.on_answer(self._watcher.note)
        self._controller.on_status(self._follow_live)
        self._watch_section = WatchSection(self._watcher, add=self.when)
        root = self._panel.root
        root.children = (*root.children, self._watch_section.root)

    def __repr__(self) -> str:
        params = self._controller.params
        return (
            f"RealtimeVLM(base_url={redact_url(self._controller.client.base_url)!r}, "
            f"model={params.model!r}, prompt={params.prompt!r})"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._panel.root._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        # IPython shows the panel this way, with a plain-HTML copy of its frame, answers and
        # latency under it: what a saved notebook shows where no kernel runs it (see _static.py).
        show(self, self._panel.root, self._controller)

    @property
    def base_url(self) -> str:
        """The server root requests go to (without ``/v1``)."""
        return self._controller.client.base_url

    @property
    def prompt(self) -> str:
        """The question asked about every frame; settable (the panel's box follows)."""
        return self._controller.params.prompt

    @prompt.setter
    def prompt(self, value: str) -> None:
        # The panel's prompt box writes through to the controller.
        self._panel.prompt.value = value

    @property
    def history(self) -> History:
        """This session's answers and failures, oldest first (the last ``history_limit``).

        A snapshot: ``.to_pandas()``, ``.to_records()``, ``.save(path)``.
        """
        return History(self._controller.history)

    @property
    def last_answer(self) -> Answer | None:
        """The newest record in ``history`` (None before the first request)."""
        return self._controller.history[-1] if self._controller.history else None

    # -- asking from Python ----------------------------------------------------------------------
    def ask(self, prompt: str | None = None, **overrides: Any) -> Answer:
        """Ask about a fresh frame and wait for the whole answer (the cell blocks meanwhile).

        ``prompt`` and ``overrides`` (``model``, ``max_tokens``, ``temperature``, ``stream``,
        ``schema``, ``thinking``) apply to this call only. The answer goes into ``history`` and
        the panel like any other.
        Raises the request's error (``ServerUnreachable``, ``CameraUnavailable``, …) after
        recording it. In an ``async`` cell, prefer ``await app.ask_async(...)``.
        """
        params = self._params_for(prompt, overrides)
        return self._finish(self._blocking(lambda client: self._controller.request(params, client=client)))

    async def ask_async(self, prompt: str | None = None, **overrides: Any) -> Answer:
        """``ask()`` without blocking: ``answer = await app.ask_async("How many people?")``."""
        params = self._params_for(prompt, overrides)
        return self._finish(await self._controller.request(params))

    def _params_for(self, prompt: str | None, overrides: dict[str, Any]) -> ChatParams:
        unknown = sorted(set(overrides) - set(_OVERRIDABLE))
        if unknown:
            raise TypeError(f"ask() got unknown setting(s) {unknown}; it takes {list(_OVERRIDABLE)}")
        changes = dict(overrides)
        if changes.get("schema") is not None:
            changes["schema"] = to_schema(changes["schema"])
        if prompt is not None:
            changes["prompt"] = prompt
        return dataclasses.replace(self._controller.params, **changes)

    def _finish(self, answer: Answer) -> Answer:
        self._controller.record(answer)
        if answer.exception is not None:
            raise answer.exception
        return answer

    def snapshot(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """A fresh frame from the source as a BGR array (OpenCV's convention), ``height×width×3``."""
        frame = run_blocking(self._controller.source.capture_original)
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"frame #{frame.seq} ({len(frame.jpeg)} bytes) could not be decoded")
        return np.asarray(image, dtype=np.uint8)

    def save_session(self, path: str | Path) -> Path:
        """Save the history: ``path/answers.jsonl`` (one answer per line) and ``path/frames/*.jpg``.

        Load it back with ``rtvlm_widget.load_session(path)``. Returns the folder.
        """
        return self.history.save(path)

    # -- send size -------------------------------------------------------------------------------
    @property
    def send_size(self) -> int | str:
        """``"auto"``, 0 (original) or a longest edge in pixels; settable (the panel follows)."""
        return self._controller.send_size.mode

    @send_size.setter
    def send_size(self, value: int | str) -> None:
        mode = parse_send_size(value)
        self._controller.send_size.set_mode(mode)
        self._panel.send_size.show_mode(mode)

    def probe_send_sizes(self) -> ProbeResult:
        """Send a fresh frame at 256–1024 px and as it is, with ``max_tokens`` 1, and return the
        table of prompt tokens, image tokens and latency per size; in auto mode the chosen size
        is used from now on. The cell blocks meanwhile (``probe_send_sizes_async`` does not)."""
        return self._blocking(self._controller.probe_send_size)

    async def probe_send_sizes_async(self) -> ProbeResult:
        """``probe_send_sizes()`` without blocking the cell."""
        return await self._controller.probe_send_size()

    # -- comparisons and replays ---------------------------------------------------------------
    def compare(
        self,
        prompts: Sequence[str],
        models: Sequence[str | None] | None = None,
        frame: object = None,
        *,
        concurrency: int | None = None,
        **overrides: Any,
    ) -> Comparison:
        """Ask every prompt × model about one frozen frame; shows a grid that fills in as answers
        arrive and returns the results (``.to_pandas()``, ``result[row, column]``).

        ``frame``: None takes a fresh one from the source; or JPEG bytes, a BGR array, an
        ``Answer`` (its frame). ``models``: None asks the current model only. Requests run
        ``concurrency`` at a time (default: ``max_in_flight``). The cell blocks meanwhile;
        ``compare_async`` does not.
        """
        params = self._params_for(None, overrides)
        picked = frame_from(frame) if frame is not None else self._fresh_frame()
        comparison, jobs = plan_compare(params, list(prompts), list(models or [None]), picked)
        self._fill_blocking(comparison, jobs, concurrency)
        return comparison

    async def compare_async(
        self,
        prompts: Sequence[str],
        models: Sequence[str | None] | None = None,
        frame: object = None,
        *,
        concurrency: int | None = None,
        **overrides: Any,
    ) -> Comparison:
        """``compare()`` without blocking the cell."""
        params = self._params_for(None, overrides)
        picked = frame_from(frame) if frame is not None else await self._controller.source.capture()
        comparison, jobs = plan_compare(params, list(prompts), list(models or [None]), picked)
        await self._fill(comparison, jobs, concurrency)
        return comparison

    def replay(
        self,
        session: object = None,
        *,
        prompt: str | None = None,
        model: str | None = None,
        concurrency: int | None = None,
        **overrides: Any,
    ) -> Comparison:
        """Ask again about a recorded session's frames with another ``prompt`` / ``model`` (and
        ``overrides``); shows recorded and new answers side by side and returns them.

        ``session``: None (this session's history), a ``History``, a list of answers, or a
        folder written by ``save_session``.
        """
        comparison, jobs = self._plan_replay(session, prompt, model, overrides)
        self._fill_blocking(comparison, jobs, concurrency)
        return comparison

    async def replay_async(
        self,
        session: object = None,
        *,
        prompt: str | None = None,
        model: str | None = None,
        concurrency: int | None = None,
        **overrides: Any,
    ) -> Comparison:
        """``replay()`` without blocking the cell."""
        comparison, jobs = self._plan_replay(session, prompt, model, overrides)
        await self._fill(comparison, jobs, concurrency)
        return comparison

    def _plan_replay(
        self, session: object, prompt: str | None, model: str | None, overrides: dict[str, Any]
    ) -> tuple[Comparison, list[Job]]:
        self._params_for(None, overrides)  # refuses unknown settings
        if session is None:
            answers: list[Answer] = list(self.history)
        elif isinstance(session, (str, Path)):
            answers = list(load_session(session))
        elif isinstance(session, Sequence):
            answers = [a for a in session if isinstance(a, Answer)]
        else:
            raise TypeError(f"cannot replay a {type(session).__name__}: give a History, answers or a folder")
        return plan_replay(answers, self._controller.params, prompt=prompt, model=model, **overrides)

    def _fresh_frame(self) -> Frame:
        return run_blocking(self._controller.source.capture)

    def _fill_blocking(self, comparison: Comparison, jobs: list[Job], concurrency: int | None) -> None:
        self._blocking(lambda client: self._fill(comparison, jobs, concurrency, client))

    def _blocking(self, work: Callable[[VLMClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` to its end while this cell waits (``run_blocking``), through a client
        of its own: the controller's belongs to the kernel's event loop, which is blocked."""
        client = self._panel.new_client()

        async def run() -> T:
            try:
                return await work(client)
            finally:
                await client.aclose()

        return run_blocking(run)

    async def _fill(
        self,
        comparison: Comparison,
        jobs: list[Job],
        concurrency: int | None,
        client: VLMClient | None = None,
    ) -> None:
        comparison.display()
        controller = self._controller

        async def request(params: ChatParams, frame: Frame) -> Answer:
            return await controller.request(params, client=client, frames=[frame])

        await run_grid(comparison, jobs, request, concurrency or controller.max_in_flight)

    # -- callbacks -------------------------------------------------------------------------------
    def on_answer(self, fn: Callable[[Answer], object]) -> Callable[[Answer], object]:
        """Call ``fn(answer)`` for every successful answer (live, Send once or ``ask``).

        Usable as a decorator. An exception in ``fn`` is shown in the panel's log and status line
        and does not stop the live loop.
        """
        self._controller.on_answer(self._guarded(fn, lambda a: a.ok))
        return fn

    def on_error(self, fn: Callable[[Answer], object]) -> Callable[[Answer], object]:
        """Call ``fn(answer)`` for every failed request; ``answer.error`` says why and
        ``answer.exception`` is the exception. Usable as a decorator."""
        self._controller.on_answer(self._guarded(fn, lambda a: not a.ok))
        return fn

    def _guarded(
        self, fn: Callable[[Answer], object], wanted: Callable[[Answer], bool]
    ) -> Callable[[Answer], None]:
        name = getattr(fn, "__qualname__", repr(fn))

        def call(answer: Answer) -> None:
            if not wanted(answer):
                return
            try:
                fn(answer)
            except Exception as exc:  # noqa: BLE001 - any user error is shown, the loop goes on
                where = traceback.extract_tb(exc.__traceback__)[-1]
                self._panel.report(
                    f"callback {name} raised {type(exc).__name__}: {exc} "
                    f"({Path(where.filename).name}, line {where.lineno})"
                )

        return call

    def send_once(self) -> asyncio.Task[Answer]:
        """Ask about one fresh frame in the background (like the Send once button)."""
        return self._controller.send_once()

    async def capture(self) -> Frame:
        """A fresh JPEG frame from the browser camera."""
        return await self.view.capture()

    def start(self) -> None:
        """Start live mode (like the Start button)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop live mode and cancel the request in flight."""
        self._controller.stop()

    # -- watched conditions ----------------------------------------------------------------------
    def when(
        self,
        question: str,
        *,
        confirm: int = 2,
        clear: int = 2,
        cooldown: float = 30.0,
        threshold: float | None = None,
        on_enter: Callable[[Event], object] | None = None,
        on_exit: Callable[[Event], object] | None = None,
        snapshot: bool | str | Path = False,
        clip: tuple[float, float] | None = None,
        webhook: str | None = None,
        webhook_headers: dict[str, str] | None = None,
    ) -> Condition:
        """Watch for ``question`` (yes/no) on the live video; returns the condition (``.state``,
        ``.remove()``). Its edges land in ``events``.

        It enters after ``confirm`` yes in a row (not sooner than ``cooldown`` seconds after its
        last enter) and exits after ``clear`` no in a row. ``threshold``: P(yes) at or above it
        counts as yes, where the server sends logprobs. On an edge: ``on_enter`` / ``on_exit``
        (given the ``Event``; their errors go to the log), ``snapshot`` (True: a JPEG in
        ``rtvlm-events/``, or a folder), ``clip=(before, after)`` (an MP4 of those seconds around
        the enter), ``webhook`` (the event POSTed as JSON, with ``webhook_headers``, retried;
        the headers are never logged or shown). Conditions are asked together, in one request,
        every ``watch_every`` seconds while live mode runs.
        """
        condition = Condition(
            question,
            confirm=confirm,
            clear=clear,
            cooldown=cooldown,
            threshold=threshold,
            on_enter=on_enter,
            on_exit=on_exit,
            snapshot=snapshot,
            clip=clip,
            webhook=webhook,
            webhook_headers=webhook_headers,
        )
        self._watcher.add(condition)
        if self._controller.live:
            self._follow_live("live", "")
        return condition

    @property
    def events(self) -> Events:
        """Every edge of the watched conditions so far (``.to_pandas()`` for a table)."""
        return self._watcher.events

    @property
    def watch_every(self) -> float:
        """Seconds between evaluations of the watched conditions in live mode (default 1)."""
        return self._watcher.every

    @watch_every.setter
    def watch_every(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"watch_every must be a number of seconds >= 0, not {seconds!r}")
        self._watcher.every = float(seconds)

    def _follow_live(self, state: str, _message: str) -> None:
        """The watcher runs while live mode does (and there is something to watch)."""
        running = self._watching is not None and not self._watching.done()
        if state in ("live", "retrying") and self._watcher.conditions and not running:
            self._watching = spawn(self._watcher.run(self._controller.source.capture))
        elif state in ("idle", "stopped") and self._watching is not None:
            self._watching.cancel()
            self._watching = None

    def close(self) -> None:
        """Stop, close the HTTP client and remove the widgets from the page."""
        if self._watching is not None:
            self._watching.cancel()
        self._controller.stop()
        # Without a running loop nothing is in flight and the client holds no connections.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._controller.aclose())
        _close_tree(self._panel.root)


def _check_run_settings(
    interval: float, max_in_flight: int, frames_per_request: int, frame_spacing: float, history_limit: int
) -> None:
    for name, value in (("interval", interval), ("frame_spacing", frame_spacing)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
    for name, count in (
        ("max_in_flight", max_in_flight),
        ("frames_per_request", frames_per_request),
        ("history_limit", history_limit),
    ):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name} must be a whole number >= 1, not {count!r}")


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
