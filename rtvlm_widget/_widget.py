"""The anywidget class: the browser camera view, its run buttons and answer box, and frame intake.
No HTTP here.

Frames never travel in synced traits: the kernel asks for one (``capture``) and the view answers
with the JPEG in a binary comm buffer, or the view sends one with a click on Send once (``ask``),
so that request leaves at once. The traits carry only small state the panel shows.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

# Defined with the other errors; still importable from here, where it used to live.
from ._errors import CameraUnavailable
from ._protocol import (
    MAX_FRAME_BYTES,
    Ask,
    CaptureFailed,
    Frame,
    ProtocolError,
    Shown,
    ToggleLive,
    capture_request,
    parse_reply,
    preview,
    show_answer,
    show_reasoning,
)
from ._tasks import running_loop

if TYPE_CHECKING:
    from ._records import Answer

__all__ = ["RESOLUTIONS", "CameraUnavailable", "CameraView", "static_file"]

RESOLUTIONS = ("auto", "480p", "720p", "1080p")

#: Kernel-source previews sent to the page at most this often (the newest frame wins).
PREVIEW_EVERY_S = 1 / 25


def static_file(name: str) -> Path:
    """A shipped front-end module: ``static/`` inside the wheel, ``js/`` in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "static" / name, here.parent / "js" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"rtvlm_widget's front end ({name}) is missing from the install")


class CameraView(anywidget.AnyWidget):
    """Live camera preview in the browser; hands JPEG frames to the kernel on request."""

    _esm = static_file("widget.js")

    #: off / starting / live / denied / no-camera / ended / error — set by the view.
    camera_state = traitlets.Unicode("off").tag(sync=True)
    #: Human-readable detail for the state (e.g. the browser's error), set by the view.
    camera_message = traitlets.Unicode("").tag(sync=True)
    #: Resolution the camera actually delivers, set by the view.
    video_width = traitlets.Int(0).tag(sync=True)
    video_height = traitlets.Int(0).tag(sync=True)
    #: Cameras the browser offers, ``[{"id": …, "label": …}]`` (labels appear after permission).
    devices = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: Chosen camera (``""``: the browser's default); changing it restarts the camera.
    device_id = traitlets.Unicode("").tag(sync=True)
    #: ``auto``, ``480p``, ``720p`` or ``1080p``; a camera that cannot do it falls back, with a note.
    resolution = traitlets.Enum(RESOLUTIONS, default_value="auto").tag(sync=True)
    #: JPEG quality used by the browser's encoder.
    jpeg_quality = traitlets.Float(0.8, min=0.5, max=0.95).tag(sync=True)
    #: Mirror the preview (frames are always sent as the camera sees them).
    mirror = traitlets.Bool(False).tag(sync=True)
    #: Show the latest answer over the video.
    overlay = traitlets.Bool(True).tag(sync=True)
    #: Draw the latest final answer's boxes and points over the video (or the source's preview).
    shapes_visible = traitlets.Bool(True).tag(sync=True)
    #: ``camera``: the browser camera. Anything else labels a kernel-side source (``_sources.py``):
    #: the view then never opens the camera and shows the frames the kernel sends (``show_frame``).
    source = traitlets.Unicode("camera").tag(sync=True)
    #: Live mode is on (set by the kernel): the view's Start button reads Stop.
    live = traitlets.Bool(False).tag(sync=True)
    #: Longest edge of the frames the view sends with a click (0: as the camera gives them); the
    #: kernel keeps it at the send size in use.
    send_edge = traitlets.Int(0, min=0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seq = itertools.count(1)
        #: Frames asked of the browser, and frames that arrived for a request still waiting.
        self.frames_requested = 0
        self.frames_received = 0
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        #: Malformed messages from the front end that were dropped.
        self.dropped_messages = 0
        self._on_toggle: list[Callable[[], None]] = []
        self._on_ask: list[Callable[[Frame | None], None]] = []
        self._on_shown: list[Callable[[int, float], None]] = []
        self._shown_seqs: set[int] = set()
        # Whether the view shows some reasoning (a plain answer then hides it again).
        self._reasoning_shown = False
        self._preview: tuple[bytes, int, int] | None = None
        self._preview_sent = 0.0
        self._preview_timer: asyncio.TimerHandle | None = None
        self.on_msg(self._on_reply)

    def on_toggle_live(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the user presses Space in the panel."""
        self._on_toggle.append(callback)

    def on_ask(self, callback: Callable[[Frame | None], None]) -> None:
        """``callback(frame)`` when the user clicks Send once; ``frame`` was taken at the click
        (None: the view had none to give, e.g. with a kernel-side source)."""
        self._on_ask.append(callback)

    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame:
        """Ask the view for a fresh frame and wait for it."""
        loop = asyncio.get_running_loop()
        seq = next(self._seq)
        self.frames_requested += 1
        future: asyncio.Future[Frame] = loop.create_future()
        self._pending[seq] = future
        try:
            asked = time.perf_counter()
            self.send(capture_request(seq, max_edge=max_edge))
            frame = await asyncio.wait_for(future, timeout)
            return replace(frame, roundtrip_s=time.perf_counter() - asked)
        except asyncio.TimeoutError:
            raise CameraUnavailable(
                f"no frame from the browser within {timeout:g} s (camera {self.camera_state}"
                f"{': ' + self.camera_message if self.camera_message else ''}); is the widget "
                "displayed in an open notebook?"
            ) from None
        finally:
            self._pending.pop(seq, None)

    def show_answer(
        self,
        seq: int,
        text: str,
        *,
        final: bool = True,
        shapes: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        """Show ``text`` over the video in every open view (``final=False``: a streamed part).

        ``shapes``: boxes and points (``Box.as_dict()`` / ``Point.as_dict()``, fractions 0–1 of the
        frame sent) drawn over the picture until the next final answer; ``None`` clears them.
        """
        self.send(show_answer(seq, text, final=final, shapes=shapes))

    def show_partial(self, seq: int, text: str) -> None:
        """A streamed part of answer ``seq`` (a controller's partial listener)."""
        self.show_answer(seq, text, final=False)

    def show_final(self, answer: Answer) -> None:
        """A controller's answer listener: a whole answer, with its boxes and points, replaces what
        the view shows; a failure leaves the last answer in place. A thinking model's reasoning
        (even of a failure: the thinking that used up the budget) is shown apart."""
        if answer.reasoning or (answer.ok and self._reasoning_shown):
            self._reasoning_shown = bool(answer.reasoning)
            self.send(show_reasoning(answer.seq, answer.reasoning, final=True))
        if answer.ok:
            self.show_answer(answer.seq, answer.text, shapes=[shape.as_dict() for shape in answer.shapes])

    def show_thinking(self, seq: int, reasoning: str) -> None:
        """The reasoning of answer ``seq`` so far (a controller's reasoning listener)."""
        self._reasoning_shown = True
        self.send(show_reasoning(seq, reasoning, final=False))

    def clear_answer(self) -> None:
        """Empty the answer box and the overlay, and take the boxes off the picture."""
        self.show_answer(0, "", shapes=None)
        if self._reasoning_shown:
            self._reasoning_shown = False
            self.send(show_reasoning(0, "", final=True))

    def show_frame(self, jpeg: bytes, width: int, height: int) -> None:
        """Show a frame a kernel-side source is sending, in every open view.

        At most one every ``PREVIEW_EVERY_S``: a frame arriving sooner waits, and is replaced by any
        newer one, so the last frame sent is always the one shown and a fast source costs the page
        little.
        """
        if len(jpeg) > MAX_FRAME_BYTES:
            return  # the comm would refuse it; the next, smaller frame is shown
        self._preview = (jpeg, width, height)
        if self._preview_timer is not None:
            return  # a send is scheduled: it takes this newer frame
        wait = self._preview_sent + PREVIEW_EVERY_S - time.monotonic()
        loop = running_loop()
        if wait <= 0 or loop is None:
            self._send_preview()
        else:
            self._preview_timer = loop.call_later(wait, self._send_preview)

    def _send_preview(self) -> None:
        self._preview_timer = None
        if self._preview is None:
            return
        jpeg, width, height = self._preview
        self._preview = None
        self._preview_sent = time.monotonic()
        self.send(preview(width, height), buffers=[jpeg])

    def on_shown(self, callback: Callable[[int, float], None]) -> None:
        """``callback(seq, shown_at)`` when a view has final answer ``seq`` on screen (epoch s)."""
        self._on_shown.append(callback)

    def _on_reply(self, _widget: object, content: object, buffers: Sequence[memoryview]) -> None:
        try:
            reply = parse_reply(content, buffers)
        except ProtocolError:
            self.dropped_messages += 1
            return
        if isinstance(reply, ToggleLive):
            for callback in self._on_toggle:
                callback()
            return
        if isinstance(reply, Ask):
            frame = reply.frame
            if frame is not None:
                # The page's seq numbers its clicks; the kernel numbers every frame it uses.
                waited = max(0.0, time.time() - frame.captured_at_ms / 1000)
                frame = replace(frame, seq=next(self._seq), roundtrip_s=waited, pushed=True)
                self.frames_received += 1
            for ask in self._on_ask:
                ask(frame)
            return
        if isinstance(reply, Shown):
            # Every open view acknowledges; the first one counts.
            if reply.seq not in self._shown_seqs:
                self._shown_seqs.add(reply.seq)
                if len(self._shown_seqs) > 1000:
                    self._shown_seqs = {s for s in self._shown_seqs if s > reply.seq - 500}
                for shown in self._on_shown:
                    shown(reply.seq, reply.shown_at_ms / 1000)
            return
        # A widget shown in two cells has two views; the first reply for a seq wins.
        future = self._pending.get(reply.seq)
        if future is None or future.done():
            return
        loop = future.get_loop()
        if isinstance(reply, CaptureFailed):
            loop.call_soon_threadsafe(_settle, future, CameraUnavailable(reply.message))
        else:
            self.frames_received += 1
            loop.call_soon_threadsafe(_settle, future, reply)


def _settle(future: asyncio.Future[Frame], outcome: Frame | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
