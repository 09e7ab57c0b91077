"""Which frame of a file or image sequence each capture gets: the one due now, or simply the next.

Real time: the frame index follows the wall clock since the first capture times the frame rate,
so frames are skipped while the model thinks, as with a camera. As fast as possible: every
capture takes the next frame. At the end, playback loops (the clock keeps running, so real time
stays real time across loops) or raises ``SourceEnded``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._readers import Image, SequentialReader, SourceEnded, SourceError

__all__ = ["Playback"]


class Playback:
    """Steps a ``SequentialReader`` for captures; thread-safe (captures may overlap)."""

    def __init__(
        self,
        reader: SequentialReader,
        label: str,
        *,
        realtime: bool,
        loop: bool,
        fps: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.loop = loop
        #: Frames per second in real time; None: every capture takes the next frame.
        self.fps = fps if realtime else None
        self._reader = reader
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._index = -1  # of the frame last decoded
        self._image: Image | None = None
        # The last frame was decoded by ``current`` and not handed out yet.
        self._peeked = False
        #: How many times playback went back to the start.
        self.loops = 0

    @property
    def index(self) -> int:
        """Index of the frame handed out last (-1 before the first)."""
        return self._index

    def next(self) -> Image:
        """The frame for a capture now."""
        with self._lock:
            return self._due() if self.fps is not None else self._step()

    def current(self) -> Image:
        """The frame handed out last; before the first capture, the first frame (which the first
        capture then gets: peeking neither starts the clock nor skips a frame)."""
        with self._lock:
            if self._image is None:
                self._keep(0, self._first())
                self._peeked = True
            assert self._image is not None
            return self._image

    def rewind(self) -> None:
        """Play again from the first frame (real time: its clock restarts at the next capture)."""
        with self._lock:
            self._started = None
            self._index = -1
            self._image = None
            self._peeked = False
            self._reader.seek(0)

    def close(self) -> None:
        """Release the reader (after a read in progress)."""
        with self._lock:
            self._reader.close()

    def _due(self) -> Image:
        assert self.fps is not None
        now = self._clock()
        if self._started is None:
            self._started = now
        target = int((now - self._started) * self.fps)
        length = self._reader.length
        if length and target >= length:
            self._ended()
            self.loops = max(self.loops, target // length)
            target %= length
        if target == self._index and self._image is not None:
            return self._image  # asked again within the same frame's time: it is still the one due
        self._reader.seek(target)
        image = self._reader.read()
        if image is None:
            # The reader ran out before its announced length (or had none): loop from here on.
            self._ended()
            self.loops += 1
            self._started = now
            target = 0
            image = self._first()
        return self._keep(target, image)

    def _step(self) -> Image:
        if self._peeked and self._image is not None:
            self._peeked = False
            return self._image
        image = self._reader.read()
        target = self._index + 1
        if image is None:
            self._ended()
            self.loops += 1
            target = 0
            image = self._first()
        return self._keep(target, image)

    def _first(self) -> Image:
        self._reader.seek(0)
        image = self._reader.read()
        if image is None:
            raise SourceError(f"{self.label} has no frames that OpenCV can read")
        return image

    def _ended(self) -> None:
        if not self.loop:
            raise SourceEnded(
                f"{self.label} played to its end (opened with loop=False); "
                "call rewind() on the source to play it again"
            )

    def _keep(self, index: int, image: Image) -> Image:
        self._peeked = False
        self._index = index
        self._image = image
        return image
