"""Multi-frame requests: keep the last N frames, sampled ``spacing_s`` apart, for motion questions."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from ._errors import CameraUnavailable
from ._protocol import Frame

__all__ = ["FrameSampler"]


class _Source(Protocol):
    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame: ...


class FrameSampler:
    """Pulls a frame every ``spacing_s`` into a ring of ``count``; runs only while it is used."""

    def __init__(self, source: _Source, count: int, spacing_s: float) -> None:
        self.count = count
        self.spacing_s = spacing_s
        self._source = source
        self._ring: deque[Frame] = deque(maxlen=count)
        self._task: asyncio.Task[None] | None = None
        self._fresh = asyncio.Event()
        self._error: BaseException | None = None

    async def frames(self, timeout: float = 30.0) -> list[Frame]:
        """The last ``count`` frames, oldest first; waits for the ring to fill on first use."""
        if self._task is None or self._task.done():
            self._error = None
            self._task = asyncio.get_running_loop().create_task(self._run())

        async def filled() -> None:
            while len(self._ring) < self.count:
                if self._error is not None:
                    raise self._error
                self._fresh.clear()
                await self._fresh.wait()

        await asyncio.wait_for(filled(), timeout)
        return list(self._ring)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                self._ring.append(await self._source.capture())
            except (CameraUnavailable, asyncio.TimeoutError) as exc:
                self._error = exc  # handed to the waiting request, which records it
            self._fresh.set()
            await asyncio.sleep(max(0.0, self.spacing_s - (loop.time() - started)))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._ring.clear()
