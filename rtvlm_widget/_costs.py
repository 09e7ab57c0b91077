"""The send size in use and what each frame costs in image tokens, per server, model and prompt.

``SendSize`` holds the user's choice (a longest edge, the original, or auto) and, for auto, the
size the last probe chose for this server and model (see ``_sendsize.py``). ``SizedSource`` applies
it to every capture, so the controller, the prefetcher and the multi-frame sampler all send
frames of that size without knowing about it. ``ImageCost`` turns a request's prompt tokens into
image tokens per frame, measuring each prompt's text-only cost once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ._chat import ChatParams, Usage
from ._client import VLMClient
from ._errors import VLMError
from ._protocol import Frame
from ._sendsize import ORIGINAL, ProbeResult, image_tokens, text_tokens

__all__ = ["AUTO", "ImageCost", "SendSize", "SizedSource", "parse_send_size"]

AUTO = "auto"


class _Source(Protocol):
    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame: ...


def parse_send_size(value: object) -> int | str:
    """``"auto"``, ``0`` / ``"original"`` (as the camera gives it) or a longest edge of 64–4096 px."""
    if value == AUTO:
        return AUTO
    if value in (ORIGINAL, "original", None):
        return ORIGINAL
    if isinstance(value, int) and not isinstance(value, bool) and 64 <= value <= 4096:
        return value
    raise ValueError(
        f"send_size must be 'auto', 'original'/0 or a longest edge in pixels (64-4096), got {value!r}"
    )


class SendSize:
    """The longest edge frames are sent at: fixed, or chosen by a probe per server and model."""

    def __init__(self, mode: object = AUTO) -> None:
        self.mode: int | str = parse_send_size(mode)
        #: The last probe's result (auto), shown in the panel and returned by probe_send_sizes().
        self.probe: ProbeResult | None = None
        #: ``(base_url, model)`` the probe was made for; another server or model probes again.
        self.probed_for: tuple[str, str | None] | None = None
        #: A probe is running; frames meanwhile go at the last known size.
        self.measuring = False
        self._listeners: list[Callable[[SendSize], None]] = []

    @property
    def max_edge(self) -> int:
        """The capture's ``max_edge`` now (0: as the camera gives it)."""
        if self.mode != AUTO:
            return int(self.mode)
        if self.probe is not None and self.probe.chosen is not None:
            return self.probe.chosen
        return ORIGINAL  # until a probe has chosen (or when it could not)

    def set_mode(self, mode: object) -> None:
        self.mode = parse_send_size(mode)
        self._changed()

    def needs_probe(self, base_url: str, model: str | None) -> bool:
        return self.mode == AUTO and self.probed_for != (base_url, model)

    def set_measuring(self, measuring: bool) -> None:
        if measuring != self.measuring:
            self.measuring = measuring
            self._changed()

    def set_probe(self, result: ProbeResult, base_url: str, model: str | None) -> None:
        self.probe = result
        self.probed_for = (base_url, model)
        self._changed()

    def on_change(self, listener: Callable[[SendSize], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener(self)

    def describe(self) -> str:
        """One short line for the panel (the probe's table gives the detail)."""
        edge = self.max_edge
        size = f"{edge} px" if edge else "original"
        if self.mode != AUTO:
            return f"{size} (fixed)"
        if self.measuring:
            return f"auto: measuring image cost… (sending {size} meanwhile)"
        if self.probe is None:
            return "auto: measured once a model is chosen and the camera is on"
        row = self.probe.chosen_row
        tokens = row.image_tokens if row is not None else None
        return f"auto → {size}" + (f", {tokens} image tokens" if tokens is not None else "")


class SizedSource:
    """A frame source whose captures default to the current send size."""

    def __init__(self, inner: _Source, size: SendSize) -> None:
        self.inner = inner
        self.size = size

    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame:
        return await self.inner.capture(timeout, max_edge=max_edge or self.size.max_edge)

    async def capture_original(self, timeout: float = 5.0) -> Frame:
        """A frame as the camera gives it, whatever the send size."""
        return await self.inner.capture(timeout, max_edge=ORIGINAL)


class ImageCost:
    """Image tokens per frame, known without delaying any answer.

    From the send-size probe (what a frame of each size cost on this server and model), else from
    the request's prompt tokens minus the prompt's text-only tokens, measured once per prompt
    after that prompt's first answer is shown (``fill``), in the same request slot.
    """

    def __init__(self) -> None:
        # (base_url, model, prompt) -> text-only prompt tokens; None: the server reports no usage.
        self._text: dict[tuple[str, str | None, str], int | None] = {}
        # (base_url, model, width, height) -> image tokens of one frame of that size (the probe).
        self._image: dict[tuple[str, str | None, int, int], int] = {}

    def remember(self, client: VLMClient, params: ChatParams, result: ProbeResult) -> None:
        """Keep what a probe measured for ``client``'s server and ``params.model``."""
        if result.text_tokens is not None:
            self._text[client.base_url, params.model, params.prompt] = result.text_tokens
        for row in result.rows:
            if row.error is None and row.image_tokens is not None:
                self._image[client.base_url, params.model, row.width, row.height] = row.image_tokens

    def per_frame(
        self, client: VLMClient, params: ChatParams, usage: Usage | None, frames: int, size: tuple[int, int]
    ) -> int | None:
        """Image tokens per frame of ``frames`` frames of ``size`` (None: not known yet)."""
        if usage is None or frames < 1:
            return None
        key = (client.base_url, params.model, params.prompt)
        if key in self._text:
            total = image_tokens(usage, self._text[key])
            return None if total is None else total // frames
        return self._image.get((client.base_url, params.model, *size))

    async def fill(
        self, client: VLMClient, params: ChatParams, usage: Usage | None, frames: int, size: tuple[int, int]
    ) -> int | None:
        """``per_frame``, measuring the prompt's text-only cost first when nothing tells it (one
        text-only request per prompt, server and model)."""
        if usage is not None and frames >= 1 and self.per_frame(client, params, usage, frames, size) is None:
            key = (client.base_url, params.model, params.prompt)
            if key not in self._text:
                if len(self._text) > 256:
                    self._text.clear()  # prompts edited by hand for hours: keep it bounded
                try:
                    self._text[key] = await text_tokens(client, params)
                except VLMError:
                    self._text[key] = None
        return self.per_frame(client, params, usage, frames, size)
