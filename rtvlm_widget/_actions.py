"""What an edge of a watched condition can do besides calling Python: keep a snapshot, write a
clip of the seconds around it, POST a webhook. Failures are logged, never raised into the loop.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import re
import time
from collections import deque
from pathlib import Path

import httpx

from ._client import redact_url
from ._conditions import Event

__all__ = ["FrameRing", "post_webhook", "save_snapshot", "write_clip"]

log = logging.getLogger("rtvlm_widget.watch")

#: Webhook attempts and the pauses between them (seconds).
WEBHOOK_TRIES = 3
WEBHOOK_BACKOFF_S = (0.5, 1.0)
WEBHOOK_TIMEOUT_S = 5.0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "condition"


def _stamp(at: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(at)) + f"-{int(at * 1000) % 1000:03d}"


def event_path(folder: Path, event: Event, suffix: str) -> Path:
    """Where a file for ``event`` goes: named after the condition, the edge and its time."""
    return folder / f"{_slug(event.condition)}-{event.kind}-{_stamp(event.time)}{suffix}"


def save_snapshot(event: Event, folder: Path) -> Path:
    """Write the deciding frame as a JPEG; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = event_path(folder, event, ".jpg")
    path.write_bytes(event.jpeg)
    return path


class FrameRing:
    """The last ``seconds`` of frames (capture time, JPEG), for clips around an edge."""

    def __init__(self, seconds: float = 10.0, max_frames: int = 600) -> None:
        self.seconds = seconds
        self._frames: deque[tuple[float, bytes]] = deque(maxlen=max_frames)

    def add(self, at: float, jpeg: bytes) -> None:
        if not jpeg or (self._frames and at <= self._frames[-1][0]):
            return  # the same frame seen twice (an answer and an evaluation), or out of order
        self._frames.append((at, jpeg))
        while self._frames and self._frames[-1][0] - self._frames[0][0] > self.seconds:
            self._frames.popleft()

    def between(self, start: float, end: float) -> list[tuple[float, bytes]]:
        frames = list(self._frames)
        times = [at for at, _ in frames]
        return frames[bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]


def write_clip(
    frames: list[tuple[float, bytes]], path: Path, start: float, end: float, fps: float = 10.0
) -> Path:
    """An MP4 of ``[start, end]``: each output frame shows the newest frame captured by then
    (frames are as sparse as the requests that took them)."""
    import cv2  # slow to import; only clips need it here
    import numpy as np

    if not frames:
        raise ValueError(f"no frames between {start:.2f} and {end:.2f} for {path}")
    decoded = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for _, jpeg in frames]
    kept = [(at, image) for (at, _), image in zip(frames, decoded, strict=True) if image is not None]
    if not kept:
        raise ValueError(f"no readable frames for {path}")
    images = [image for _, image in kept]
    height, width = images[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        times = [at for at, _ in kept]
        for k in range(max(1, round((end - start) * fps))):
            index = max(0, bisect.bisect_right(times, start + (k + 1) / fps) - 1)
            image = images[index]
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height))
            writer.write(image)
    finally:
        writer.release()
    return path


async def post_webhook(url: str, event: Event, headers: dict[str, str] | None = None) -> bool:
    """POST the event as JSON, with retries and backoff; True when the server took it (2xx)."""
    body = event.as_dict()
    shown = redact_url(url)
    async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, headers=headers or {}) as client:
        for attempt in range(WEBHOOK_TRIES):
            problem = ""
            try:
                response = await client.post(
                    url, content=json.dumps(body, default=str), headers={"Content-Type": "application/json"}
                )
                if response.is_success:
                    return True
                problem = f"answered {response.status_code} {response.reason_phrase}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    log.warning("webhook %s %s; not retried", shown, problem)
                    return False
            except httpx.HTTPError as exc:
                problem = f"failed ({type(exc).__name__})"
            if attempt < WEBHOOK_TRIES - 1:
                pause = WEBHOOK_BACKOFF_S[min(attempt, len(WEBHOOK_BACKOFF_S) - 1)]
                log.warning("webhook %s %s; trying again in %g s", shown, problem, pause)
                await asyncio.sleep(pause)
            else:
                log.warning("webhook %s %s; gave up after %d tries", shown, problem, WEBHOOK_TRIES)
    return False
