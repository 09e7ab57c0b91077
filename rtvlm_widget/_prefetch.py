"""Live mode's frame prefetch: ask the browser for the next frame ahead of the turn that uses it.

Without it every live request first waits a comm round trip for its frame. The prefetcher starts
that round trip about ``round trip`` before the next turn, so the frame arrives as the turn starts
(overlapping the request in flight). A frame that waited too long (the slot stayed busy: a slow
server) is dropped for a fresh one, so answers never describe older frames than before.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from ._errors import CameraUnavailable
from ._protocol import Frame

__all__ = ["Prefetcher"]


class _Source(Protocol):
    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame: ...


class Prefetcher:
    """At most one frame on its way ahead of time."""

    def __init__(self, source: _Source, *, max_age_s: float = 0.1) -> None:
        self._source = source
        self.max_age_s = max_age_s
        self._task: asyncio.Task[tuple[Frame, float]] | None = None
        # A running estimate of the comm round trip for a frame (seconds).
        self._roundtrip_s = 0.05

    def schedule(self, turn_at: float) -> None:
        """Fetch a frame to arrive about when the turn at ``turn_at`` (perf_counter time) starts."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._fetch(turn_at))

    async def _fetch(self, turn_at: float) -> tuple[Frame, float]:
        await asyncio.sleep(max(0.0, turn_at - time.perf_counter() - self._roundtrip_s))
        frame = await self._source.capture()
        self._roundtrip_s = 0.8 * self._roundtrip_s + 0.2 * frame.roundtrip_s
        return frame, time.perf_counter()

    async def take(self) -> Frame | None:
        """The prefetched frame when it is on its way or fresh; None means: capture one now."""
        task, self._task = self._task, None
        if task is None:
            return None
        try:
            frame, arrived = await task
        except (CameraUnavailable, asyncio.TimeoutError):
            return None  # a fresh capture will report the problem
        return frame if time.perf_counter() - arrived <= self.max_age_s else None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
