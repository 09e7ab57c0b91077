"""Kernel-side video sources: a video file, a stream URL, a camera on the kernel's machine, a folder
of images or a list of arrays, as a frame source for the controller (in place of the browser camera).

``open_source`` turns what the user gave into a ``KernelSource``. Its ``capture`` reads, scales and
encodes in a worker thread (cv2 blocks; the kernel's event loop must not), and hands each frame to
the view's preview, so the panel shows what the model is asked about.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ._client import redact_url
from ._playback import Playback
from ._protocol import Frame
from ._readers import (
    IMAGE_SUFFIXES,
    Image,
    ImageSequence,
    LiveReader,
    SourceEnded,
    SourceError,
    VideoFile,
    check_array,
)

if TYPE_CHECKING:
    # Only a type here: sources need no widget library to run (e.g. in a plain script).
    from ._widget import CameraView

__all__ = ["KernelSource", "SourceEnded", "SourceError", "open_source"]

log = logging.getLogger("rtvlm_widget")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Seconds OpenCV's FFmpeg waits to open a stream URL, and for each read from it.
STREAM_TIMEOUT_S = 10.0
#: Real-time rate for a video whose container gives none.
DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class _Shot:
    jpeg: bytes
    width: int
    height: int
    captured_at_ms: float
    draw_ms: float
    encode_ms: float


class KernelSource:
    """Frames the kernel reads itself (OpenCV), for the controller; shown in the view's preview.

    Made by ``open_source``. Implements the controller's frame source (``capture``) like the
    browser camera view does; answers reach the view through the controller's listeners.
    """

    def __init__(
        self,
        reader: Playback | LiveReader,
        label: str,
        *,
        size: tuple[int, int] = (0, 0),
        sequence: ImageSequence | None = None,
    ) -> None:
        #: Short description shown in the panel (URL credentials redacted).
        self.label = label
        self._reader = reader
        self._size = size
        self._sequence = sequence
        self._view: CameraView | None = None
        self._seq = itertools.count(1)
        self._live_number = 0
        # Concurrent live captures take turns, so no frame is handed out twice.
        self._pick = threading.Lock()
        self._closed = False
        #: Frames handed to the controller.
        self.frames_sent = 0
        # Threads and captures are released even if nobody calls close().
        self._finalizer = weakref.finalize(self, reader.close)

    def __repr__(self) -> str:
        return f"KernelSource({self.label!r})"

    @property
    def live(self) -> bool:
        """True for streams and cameras (frames come as they happen), False for files and sequences."""
        return isinstance(self._reader, LiveReader)

    @property
    def skipped(self) -> int:
        """Image files of a folder skipped because OpenCV cannot read them."""
        return len(self._sequence.skipped) if self._sequence is not None else 0

    # -- the view --------------------------------------------------------------------------------
    def attach(self, view: CameraView) -> None:
        """Show this source's frames and state in ``view`` (its browser camera stays off)."""
        self._view = view
        view.source = self.label
        self._state("live", "")
        if self._size[0]:
            view.video_width, view.video_height = self._size
        # The panel's close() closes the view: the source goes with it.
        view.observe(self._on_view_comm, names="comm")

    def _on_view_comm(self, change: dict[str, Any]) -> None:
        if change["new"] is None:
            self.close()

    def _state(self, state: str, problem: str) -> None:
        """The panel's camera badge reads the view's state: say what the source is, or what is wrong
        with it (problems name the source)."""
        if self._view is not None:
            self._view.camera_state = state
            self._view.camera_message = problem or f"kernel source: {self.label}"

    # -- frames ----------------------------------------------------------------------------------
    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame:
        """The frame due now as a JPEG (longest edge at most ``max_edge`` when > 0)."""
        if self._closed:
            raise SourceError(f"{self.label} is closed")
        asked = time.perf_counter()
        quality = round(100 * (self._view.jpeg_quality if self._view is not None else 0.8))
        try:
            # The live reader gives up at ``timeout`` with its own reason; this is the backstop.
            shot = await asyncio.wait_for(
                asyncio.to_thread(self._shoot, max_edge, quality, timeout), timeout + 1.0
            )
        except asyncio.TimeoutError:
            error = SourceError(f"no frame from {self.label} within {timeout:g} s")
            self._state("error", str(error))
            raise error from None
        except SourceError as exc:
            self._state("ended" if isinstance(exc, SourceEnded) else "error", str(exc))
            raise
        frame = Frame(
            seq=next(self._seq),
            jpeg=shot.jpeg,
            width=shot.width,
            height=shot.height,
            captured_at_ms=shot.captured_at_ms,
            draw_ms=shot.draw_ms,
            encode_ms=shot.encode_ms,
            roundtrip_s=time.perf_counter() - asked,
        )
        self.frames_sent += 1
        if self._view is not None:
            self._state("live", "")
            self._view.video_width, self._view.video_height = shot.width, shot.height
            self._view.show_frame(shot.jpeg, shot.width, shot.height)
        return frame

    def _shoot(self, max_edge: int, quality: int, timeout: float) -> _Shot:
        """Read, scale and encode one frame (in a worker thread)."""
        started = time.perf_counter()
        if isinstance(self._reader, LiveReader):
            with self._pick:
                live = self._reader.newer_than(self._live_number, timeout)
                self._live_number = live.number
            image, captured_at_ms, decode_ms = live.image, live.captured_at_ms, live.decode_ms
            started = time.perf_counter()
        else:
            image = self._reader.next()
            captured_at_ms = time.time() * 1000
            decode_ms = 0.0
        image = _fit(image, max_edge)
        drawn = time.perf_counter()
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise SourceError(f"{self.label}: OpenCV could not encode a {image.shape} frame as JPEG")
        height, width = image.shape[:2]
        return _Shot(
            jpeg=buffer.tobytes(),
            width=width,
            height=height,
            captured_at_ms=captured_at_ms,
            draw_ms=decode_ms + (drawn - started) * 1000,
            encode_ms=(time.perf_counter() - drawn) * 1000,
        )

    def latest_array(self) -> Image | None:
        """The newest frame as a BGR array (a copy), or None when a stream has delivered none yet.

        Streams and cameras: the newest frame grabbed. Files and sequences: the frame handed out
        last, or the first one before any capture.
        """
        if isinstance(self._reader, LiveReader):
            latest = self._reader.latest()
            if latest is None:
                return None
            image = latest.image
        else:
            image = self._reader.current()
        copy: Image = image.copy()  # the caller may draw on it; the source's frame stays intact
        return copy

    def rewind(self) -> None:
        """Play a file or sequence again from its first frame (after ``SourceEnded``, say)."""
        if isinstance(self._reader, Playback):
            self._reader.rewind()
            self._state("live", "")

    def close(self) -> None:
        """Release the capture and stop the reader thread; later captures fail."""
        self._closed = True
        self._finalizer()


def _fit(image: Image, max_edge: int) -> Image:
    """``image`` shrunk so its longest edge is at most ``max_edge`` (INTER_AREA: no aliasing)."""
    height, width = image.shape[:2]
    if max_edge <= 0 or max(height, width) <= max_edge:
        return image
    scale = max_edge / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


# -- turning what the user gave into a source ---------------------------------------------------
def open_source(
    spec: object,
    *,
    view: CameraView | None = None,
    realtime: bool = True,
    loop: bool = True,
    fps: float | None = None,
) -> KernelSource:
    """Open a kernel-side frame source.

    Args:
        spec: a video file path; a stream URL (``rtsp://``, ``http://…/x.mjpg``, …; an http(s) URL
            of a finite video plays like a file); an ``int``, a camera on the kernel's machine
            (not the browser's); a folder of images (``.jpg .jpeg .png .bmp .webp``, natural name
            order: ``2.png`` before ``10.png``; unreadable files are skipped and counted); one
            image file; a list of arrays (HxWx3 uint8 BGR, or HxW grayscale; kept, not copied) or
            one such array, or an NxHxWx3 array; or a ``KernelSource`` (attached to ``view``,
            the other arguments ignored).
        view: the camera view whose preview shows the frames and whose JPEG quality is used.
        realtime: files play at their frame rate from the first capture on, frames being skipped
            while the model answers (as with a camera); False: each capture takes the next frame.
        loop: at the end, start again (default) rather than raise ``SourceEnded``.
        fps: the real-time rate: overrides a video's own; for folders and arrays it gives them
            one (without it, each capture takes the next image).

    Raises:
        SourceError: the source cannot be opened or read; the message names it and says why.
        TypeError: ``spec`` is none of the above.
    """
    if isinstance(spec, KernelSource):
        source = spec
    elif isinstance(spec, bool) or not isinstance(spec, (int, str, os.PathLike, np.ndarray, list, tuple)):
        raise TypeError(
            "source must be a video file or folder path, a stream URL, a camera index (int) or a "
            f"list of BGR numpy arrays; got {type(spec).__name__}"
        )
    elif isinstance(spec, int):
        source = _open_camera(spec)
    elif isinstance(spec, (np.ndarray, list, tuple)):
        source = _open_arrays(spec, realtime=realtime, loop=loop, fps=fps)
    else:
        text = os.fspath(spec)
        if not isinstance(text, str):
            raise TypeError(f"source paths must be text, got {type(text).__name__}")
        if _URL.match(text):
            source = _open_url(text, realtime=realtime, loop=loop, fps=fps)
        else:
            source = _open_path(Path(text).expanduser(), realtime=realtime, loop=loop, fps=fps)
    if view is not None:
        source.attach(view)
    return source


def _playback(
    reader: VideoFile | ImageSequence, label: str, *, realtime: bool, loop: bool, fps: float | None
) -> KernelSource:
    rate = fps or reader.fps
    if isinstance(reader, VideoFile) and rate is None:
        log.info("%s gives no frame rate; playing it at %g fps", label, DEFAULT_FPS)
        rate = DEFAULT_FPS
    playback = Playback(reader, label, realtime=realtime, loop=loop, fps=rate)
    try:
        first = playback.current()  # proves it decodes, and gives the size
    except BaseException:
        playback.close()
        raise
    height, width = first.shape[:2]
    sequence = reader if isinstance(reader, ImageSequence) else None
    return KernelSource(playback, label, size=(width, height), sequence=sequence)


def _open_path(path: Path, *, realtime: bool, loop: bool, fps: float | None) -> KernelSource:
    if path.is_dir():
        return _open_folder(path, realtime=realtime, loop=loop, fps=fps)
    if not path.exists():
        raise SourceError(f"no such video file or image folder: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        sequence = ImageSequence([path], f"image {path.name}")
        return _playback(sequence, sequence.label, realtime=realtime, loop=loop, fps=fps)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise SourceError(
            f"OpenCV could not open {path} as a video: is it a video file, in a format this "
            "OpenCV build can decode? (re-encoding helps: ffmpeg -i in -c:v libx264 out.mp4)"
        )
    label = f"video {path.name}"
    return _playback(VideoFile(capture, label), label, realtime=realtime, loop=loop, fps=fps)


def _open_folder(path: Path, *, realtime: bool, loop: bool, fps: float | None) -> KernelSource:
    names = sorted(
        (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
        key=_natural,
    )
    if not names:
        raise SourceError(f"folder {path} has no image files ({' '.join(IMAGE_SUFFIXES)})")
    # A header check is cheap; full decoding waits until each image is reached.
    readable = [p for p in names if p.is_file() and cv2.haveImageReader(str(p))]
    unreadable = set(names) - set(readable)
    if not readable:
        raise SourceError(f"none of the {len(names)} image files in {path} can be read by OpenCV")
    label = f"folder {path.name} ({len(readable)} images)"
    if unreadable:
        log.warning("%s: skipping %d files OpenCV cannot read", label, len(unreadable))
    sequence = ImageSequence(readable, label)
    sequence.skipped |= unreadable
    return _playback(sequence, label, realtime=realtime, loop=loop, fps=fps)


def _natural(path: Path) -> list[Any]:
    """Sort key: digit runs compare as numbers (frame2 before frame10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _open_arrays(
    spec: np.ndarray[Any, Any] | Sequence[object], *, realtime: bool, loop: bool, fps: float | None
) -> KernelSource:
    if isinstance(spec, np.ndarray) and spec.ndim == 4:
        items: Sequence[object] = list(spec)
        where = "frame {} of the array"
    elif isinstance(spec, np.ndarray):
        items, where = [spec], "the array"
    else:
        items, where = spec, "item {} of the list"
    if not items:
        raise SourceError("the list of frames is empty")
    frames = [check_array(item, where.format(index)) for index, item in enumerate(items)]
    label = f"{len(frames)} array{'s' if len(frames) != 1 else ''}"
    return _playback(ImageSequence(frames, label), label, realtime=realtime, loop=loop, fps=fps)


def _open_url(url: str, *, realtime: bool, loop: bool, fps: float | None) -> KernelSource:
    shown = redact_url(url)

    def connect() -> cv2.VideoCapture:
        ms = int(STREAM_TIMEOUT_S * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    capture = connect()
    if not capture.isOpened():
        capture.release()
        raise SourceError(
            f"could not open stream {shown}: check the address and that the stream is running and "
            "reachable from the machine the kernel runs on (the kernel opens it, not the browser)"
        )
    video = VideoFile(capture, f"video {shown}")
    if url.lower().startswith(("http://", "https://")) and video.length is not None:
        return _playback(video, video.label, realtime=realtime, loop=loop, fps=fps)  # a finite file
    return _live(connect, f"stream {shown}", capture)


def _open_camera(index: int) -> KernelSource:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise SourceError(
            f"could not open camera {index} on the kernel's machine: source={index} means a camera "
            "attached to the computer running the kernel, not the browser's (leave source out to "
            "use the browser camera)"
        )
    return _live(lambda: cv2.VideoCapture(index), f"kernel camera {index}", capture)


def _live(connect: Callable[[], cv2.VideoCapture], label: str, capture: cv2.VideoCapture) -> KernelSource:
    reader = LiveReader(connect, label, capture=capture)
    return KernelSource(reader, label, size=reader.size)
