""" "Test API": list models, one tiny text request, one tiny image request; report what works."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache

from ._chat import ChatParams
from ._client import VLMClient
from ._errors import ImagesNotSupported, VLMError

__all__ = ["ApiCheck", "check_api"]


@cache
def _probe_jpeg() -> bytes:
    """A small, valid test picture (a gradient with a square), made once."""
    # Imported here: OpenCV is heavy, and the server extension imports this package too.
    import cv2
    import numpy as np

    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :, 1] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    image[16:48, 16:48] = (40, 40, 220)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - OpenCV always encodes a plain array
        raise RuntimeError("OpenCV could not encode the probe image")
    return bytes(data)


@dataclass(frozen=True)
class ApiCheck:
    """What "Test API" found; ``summary()`` is the one line the panel shows."""

    base_url: str
    models: list[str] = field(default_factory=list)
    text_latency_s: float | None = None
    image_latency_s: float | None = None
    accepts_images: bool | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.accepts_images)

    def summary(self) -> str:
        if self.error and self.text_latency_s is None:
            return f"API check failed: {self.error}"
        parts = [f"{len(self.models)} model(s)"]
        if self.text_latency_s is not None:
            parts.append(f"text {self.text_latency_s * 1000:.0f} ms")
        if self.image_latency_s is not None:
            parts.append(f"image {self.image_latency_s * 1000:.0f} ms")
        if self.accepts_images:
            parts.append("accepts images")
        elif self.error:
            parts.append(self.error)
        return "API ok: " + ", ".join(parts) if self.ok else "API problem: " + ", ".join(parts)


async def check_api(client: VLMClient, model: str | None) -> ApiCheck:
    """Run the three probes in order; stops at the first failure that makes the rest pointless."""
    try:
        models = await client.list_models()
    except VLMError as exc:
        return ApiCheck(client.base_url, error=str(exc))
    params = ChatParams(prompt="Say OK.", model=model or (models[0] if models else None), max_tokens=1)
    started = time.perf_counter()
    try:
        await client.chat(params)
    except VLMError as exc:
        return ApiCheck(client.base_url, models, error=str(exc))
    text_latency = time.perf_counter() - started
    started = time.perf_counter()
    try:
        await client.chat(params, [_probe_jpeg()])
    except ImagesNotSupported as exc:
        return ApiCheck(client.base_url, models, text_latency, accepts_images=False, error=str(exc))
    except VLMError as exc:
        return ApiCheck(client.base_url, models, text_latency, error=str(exc))
    return ApiCheck(client.base_url, models, text_latency, time.perf_counter() - started, accepts_images=True)
