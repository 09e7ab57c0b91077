"""The send size in use and what each frame costs in image tokens, per server, model and prompt.

``SendSize`` holds the user's choice (a longest edge, the original, or auto) and, for auto, the
size the last probe chose for this server and model (see ``_sendsize.py``). ``SizedSource`` applies
it to every capture, so the controller, the prefetcher and the multi-frame sampler all send
frames of that size without knowing about it. ``ImageCost`` turns a request's prompt tokens into
image tokens per frame, measuring each prompt's text-only cost once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ._client import ChatParams, Usage, VLMClient
from ._errors import VLMError
from ._protocol import Frame
from ._sendsize import ORIGINAL, ProbeResult, image_tokens, text_tokens

__all__ = ["AUTO", "ImageCost", "SendSize", "SizedSource", "parse_send_size"]

AUTO = "auto"


class _Source(Protocol):
    async def capture(self, timeout: float = 5.0, *, max_edge: int = 0) -> Frame: ...

    def show_answer(
        self, seq: int, text: str, *, final: bool = True, shapes: list[dict[str, Any]] | None = None
    ) -> None: ...


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
        if self.probe is None:
            return "auto: the server is probed at the first request"
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

    def show_answer(
        self, seq: int, text: str, *, final: bool = True, shapes: list[dict[str, Any]] | None = None
    ) -> None:
        if shapes:
            self.inner.show_answer(seq, text, final=final, shapes=shapes)
        else:
            self.inner.show_answer(seq, text, final=final)


class ImageCost:
    """Image tokens per frame: prompt tokens minus the prompt's text-only tokens (measured once)."""

    def __init__(self) -> None:
        # (base_url, model, prompt) -> text-only prompt tokens; None: the server reports no usage.
        self._text: dict[tuple[str, str | None, str], int | None] = {}

    def remember(self, client: VLMClient, params: ChatParams, text: int | None) -> None:
        if text is not None:
            self._text[client.base_url, params.model, params.prompt] = text

    async def per_frame(
        self, client: VLMClient, params: ChatParams, usage: Usage | None, frames: int
    ) -> int | None:
        if usage is None or frames < 1:
            return None
        key = (client.base_url, params.model, params.prompt)
        if key not in self._text:
            if len(self._text) > 256:
                self._text.clear()  # prompts edited by hand for hours: keep it bounded
            try:
                self._text[key] = await text_tokens(client, params)
            except VLMError:
                self._text[key] = None
        total = image_tokens(usage, self._text[key])
        return None if total is None else total // frames
