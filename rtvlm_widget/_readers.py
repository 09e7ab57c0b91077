"""Kernel-side frame readers (OpenCV): video files, image sequences and live streams.

Everything here blocks on cv2 I/O and is meant to run off the event loop (``_sources.py`` calls it
from threads). Frames are BGR ``uint8`` arrays (OpenCV's convention); grayscale input is converted
so that everything downstream sees HxWx3.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from ._errors import CameraUnavailable

__all__ = [
    "IMAGE_SUFFIXES",
    "Image",
    "ImageSequence",
    "LiveFrame",
    "LiveReader",
    "SequentialReader",
    "SourceEnded",
    "SourceError",
    "VideoFile",
    "as_bgr",
    "check_array",
]

log = logging.getLogger("rtvlm_widget")

Image = npt.NDArray[np.uint8]

#: Files a folder source plays, in name order.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: Forward jumps up to this many frames decode through (cheap for short hops, exact for any
#: codec); longer ones seek.
_MAX_GRAB_AHEAD = 60


class SourceError(CameraUnavailable):
    """A kernel-side source cannot be opened or read; the message names the source and says why.

    A ``CameraUnavailable``: the controller turns it into an error record, as for the browser camera.
    """


class SourceEnded(SourceError):
    """A file or sequence opened with ``loop=False`` has played to its end."""


def as_bgr(image: Any) -> Image:
    """``image`` as an HxWx3 array (grayscale and single-channel ones converted)."""
    array: Image = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        return np.asarray(cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    return array


def check_array(item: object, where: str) -> Image:
    """``item`` if it is a usable frame (HxWx3 uint8 BGR, or HxW grayscale); else a clear error."""
    expected = "expected an HxWx3 uint8 BGR array (OpenCV's order) or an HxW grayscale one"
    if not isinstance(item, np.ndarray):
        raise SourceError(f"{where}: {expected}, got {type(item).__name__}")
    shape = tuple(item.shape)
    if item.dtype != np.uint8:
        hint = " (scale floats to 0-255 and use .astype(np.uint8))" if item.dtype.kind == "f" else ""
        raise SourceError(f"{where}: {expected}, got dtype {item.dtype} with shape {shape}{hint}")
    if not (item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (1, 3))) or 0 in shape:
        hint = " (drop alpha with cv2.cvtColor(a, cv2.COLOR_BGRA2BGR))" if item.ndim == 3 else ""
        raise SourceError(f"{where}: {expected}, got shape {shape}{hint}")
    image: Image = item
    return image


class SequentialReader(Protocol):
    """Frames in order, with random access by index (files and image sequences)."""

    #: Native frame rate, None when there is none (image sequences).
    fps: float | None
    #: Number of frames when known up front.
    length: int | None

    def read(self) -> Image | None:
        """The next frame, or None at the end."""

    def seek(self, index: int) -> None:
        """Make ``index`` the next frame ``read`` returns."""

    def close(self) -> None: ...


class VideoFile:
    """A video file (or a finite video behind a URL) read in order with OpenCV."""

    def __init__(self, capture: cv2.VideoCapture, label: str) -> None:
        self.label = label
        self._capture = capture
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        # Containers without a rate report 0 (or junk such as 90000): the caller picks one.
        self.fps: float | None = fps if 0 < fps <= 1000 else None
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.length: int | None = int(count) if count and 0 < count < 1e9 else None
        self._position = 0

    def read(self) -> Image | None:
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        self._position += 1
        return as_bgr(image)

    def seek(self, index: int) -> None:
        ahead = index - self._position
        if ahead == 0:
            return
        if 0 < ahead <= _MAX_GRAB_AHEAD:
            # grab() skips the colour conversion; for short hops it beats a seek's keyframe decode.
            for _ in range(ahead):
                if not self._capture.grab():
                    break
                self._position += 1
            return
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._position = index

    def close(self) -> None:
        self._capture.release()


class ImageSequence:
    """Images in order: files decoded when reached (unreadable ones skipped and counted), or arrays."""

    fps: float | None = None

    def __init__(self, items: Sequence[Path | Image], label: str) -> None:
        self.label = label
        self._items = list(items)
        self.length: int | None = len(self._items)
        #: Files that could not be decoded (they are skipped).
        self.skipped: set[Path] = set()
        self._position = 0

    def read(self) -> Image | None:
        while self._position < len(self._items):
            item = self._items[self._position]
            self._position += 1
            if not isinstance(item, Path):
                return as_bgr(item)
            image = cv2.imread(str(item), cv2.IMREAD_COLOR)
            if image is not None:
                return as_bgr(image)
            if item not in self.skipped:
                self.skipped.add(item)
                log.warning("%s: skipping %s, which OpenCV cannot read", self.label, item.name)
        return None

    def seek(self, index: int) -> None:
        self._position = max(0, index)

    def close(self) -> None:
        self._items.clear()


@dataclass(frozen=True)
class LiveFrame:
    """One frame a live reader grabbed: its number, pixels, and when and how fast it came."""

    number: int
    image: Image = field(repr=False)
    #: Epoch ms when it was grabbed.
    captured_at_ms: float
    #: Time to decode it (the wait for it is not counted).
    decode_ms: float


class LiveReader:
    """A thread that keeps grabbing a live stream or camera, so the newest frame is always at hand.

    Reading only when asked would hand out frames queued in OpenCV's and the network's buffers,
    seconds old on a slow consumer. If the stream stops, it is reopened with a growing pause.
    """

    def __init__(
        self,
        open_capture: Callable[[], cv2.VideoCapture],
        label: str,
        *,
        capture: cv2.VideoCapture | None = None,
    ) -> None:
        """``open_capture`` (re)opens the stream; ``capture`` is one already open (used first)."""
        self.label = label
        self._open = open_capture
        self._cond = threading.Condition()
        self._latest: LiveFrame | None = None
        self._problem = ""
        self._stop = threading.Event()
        capture = capture if capture is not None else open_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"could not open {label}")
        #: The size the stream announces (0 when it does not); frames may differ.
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._thread = threading.Thread(
            target=self._run, args=(capture,), name=f"rtvlm-reader {label}", daemon=True
        )
        self._thread.start()

    def _run(self, capture: cv2.VideoCapture) -> None:
        pause = 0.5
        try:
            while not self._stop.is_set():
                if capture.grab():
                    started = time.perf_counter()
                    ok, image = capture.retrieve()
                    if ok and image is not None:
                        self._publish(as_bgr(image), time.perf_counter() - started)
                        pause = 0.5
                        continue
                with self._cond:
                    self._problem = "the stream stopped delivering frames; reconnecting"
                capture.release()
                if self._stop.wait(pause):
                    break
                pause = min(5.0, pause * 2)
                capture = self._open()
        except Exception as exc:  # a dead reader must say why, not leave captures hanging silently
            log.exception("%s: reader failed", self.label)
            with self._cond:
                self._problem = f"the reader failed: {exc}"
        finally:
            capture.release()
            with self._cond:
                self._cond.notify_all()

    def _publish(self, image: Image, decode_s: float) -> None:
        number = self._latest.number + 1 if self._latest is not None else 1
        frame = LiveFrame(number, image, time.time() * 1000, decode_s * 1000)
        with self._cond:
            self._latest = frame
            self._problem = ""
            self._cond.notify_all()

    def newer_than(self, number: int, timeout: float) -> LiveFrame:
        """The newest frame, waiting for one after frame ``number`` (so none is handed out twice)."""

        def ready() -> bool:
            latest = self._latest
            return (latest is not None and latest.number > number) or self._stop.is_set()

        with self._cond:
            if not self._cond.wait_for(ready, timeout) or self._stop.is_set():
                why = "it was closed" if self._stop.is_set() else self._problem or "the stream is silent"
                raise SourceError(f"no frame from {self.label} within {timeout:g} s ({why})")
            assert self._latest is not None
            return self._latest

    def latest(self) -> LiveFrame | None:
        with self._cond:
            return self._latest

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; it releases the capture (a read blocked on the network ends by its own
        timeout; the thread is a daemon, so it never holds the interpreter open)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
