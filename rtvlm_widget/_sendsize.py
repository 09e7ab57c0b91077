"""Send size: what a frame costs in image tokens at each size, and which size to send.

The same frame can cost a fixed number of image tokens (LLaVA-style projectors), a number that
grows with the pixels sent (tiling projectors such as SmolVLM's older files, Qwen2.5-VL), or one that
depends only on the aspect ratio (projectors that resize every image to a fixed longest edge). The
server says what a request cost in ``usage.prompt_tokens``; minus the same prompt without the image
(:func:`text_tokens`, measured once) that is the image's cost.

:func:`probe_send_sizes` sends the current frame at a few longest edges with ``max_tokens: 1`` and
picks the largest that costs no more image tokens than the smallest: the most detail for the least
prompt. This module knows HTTP only through :class:`VLMClient`; nothing here touches widgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from ._chat import ChatParams, Completion, Usage
from ._client import VLMClient
from ._errors import BadResponse, VLMError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Image = npt.NDArray[np.uint8]

__all__ = [
    "ORIGINAL",
    "SEND_SIZES",
    "NoUsage",
    "ProbeResult",
    "ProbeRow",
    "image_tokens",
    "probe_send_sizes",
    "resize_jpeg",
    "scaled_size",
    "text_tokens",
]

#: Longest edges (pixels) the probe tries, smallest first; the frame as it is is always tried too.
SEND_SIZES: tuple[int, ...] = (256, 384, 512, 768, 1024)
#: A send size of 0 means the frame as the camera gives it (the capture request's ``max_edge=0``).
ORIGINAL = 0

_NO_USAGE = "server reports no usage; cannot measure tokens"
_CHAT_PATH = "/v1/chat/completions"


class NoUsage(BadResponse):
    """The server answered but reported no ``usage``, so token counts cannot be measured."""


def scaled_size(width: int, height: int, max_edge: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` frame is sent at for ``max_edge`` (0: as it is).

    Never larger than the frame; rounded like the browser's capture (``js/widget.js``), so the
    probe measures exactly the size the camera view will send.
    """
    if max_edge <= 0 or max_edge >= max(width, height):
        return width, height
    scale = max_edge / max(width, height)
    # JavaScript's Math.round rounds halves up; Python's round() would round them to even.
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def _decode(jpeg: bytes) -> Image:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"not a decodable JPEG ({len(jpeg)} bytes)")
    return np.asarray(image, dtype=np.uint8)


def _encode(image: Image, max_edge: int, quality: float) -> tuple[bytes, int, int]:
    """``image`` scaled to ``max_edge`` (never up) as JPEG bytes, with the size sent."""
    import cv2
    import numpy as np

    height, width = image.shape[:2]
    new_w, new_h = scaled_size(width, height, max_edge)
    if (new_w, new_h) != (width, height):
        # INTER_AREA averages the pixels it drops: no aliasing on downscales.
        image = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA), np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, round(quality * 100)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes(), new_w, new_h


def _check_quality(quality: float) -> None:
    if not 0 < quality <= 1:
        raise ValueError(f"quality is a fraction like the camera's JPEG quality (0–1], not {quality!r}")


def resize_jpeg(jpeg: bytes, max_edge: int, quality: float = 0.8) -> bytes:
    """``jpeg`` scaled so its longest edge is ``max_edge``, re-encoded at ``quality`` (0–1].

    Never upscales: a frame already that small (or ``max_edge`` 0) comes back unchanged, without a
    second lossy encode. Raises ``ValueError`` for bytes that are not a decodable image.
    """
    _check_quality(quality)
    image = _decode(jpeg)
    height, width = image.shape[:2]
    if scaled_size(width, height, max_edge) == (width, height):
        return jpeg
    return _encode(image, max_edge, quality)[0]


def _probe_params(params: ChatParams) -> ChatParams:
    # One token out is enough to read the prompt's cost; temperature 0 and no stream keep the
    # answer short and in one piece (usage arrives in the body, not in an optional stream chunk).
    return replace(params, max_tokens=1, temperature=0.0, stream=False)


def _prompt_tokens(completion: Completion, client: VLMClient) -> int:
    if completion.usage is None:
        raise NoUsage(_NO_USAGE, url=client.url(_CHAT_PATH))
    return completion.usage.prompt_tokens


async def text_tokens(client: VLMClient, params: ChatParams) -> int:
    """Prompt tokens of ``params``' request without any image.

    The message keeps its structure (a content list with the text part), so the chat template's
    tokens, which llama-server counts too, are the same as with an image; subtracting this from a
    request's ``usage.prompt_tokens`` leaves the image's cost. Raises :class:`NoUsage` when the
    server reports no usage, and the client's other errors when the request fails.
    """
    completion = await client.chat(_probe_params(params), [])
    return _prompt_tokens(completion, client)


def image_tokens(usage: Usage | None, text: int | None) -> int | None:
    """Image tokens of one answer: its prompt tokens minus :func:`text_tokens` of the same prompt.

    None when either is unknown. With several frames in one request it is their sum.
    """
    if usage is None or text is None:
        return None
    return usage.prompt_tokens - text


@dataclass(frozen=True)
class ProbeRow:
    """One probe request: the frame at one send size, what it cost and how long it took."""

    #: Longest edge asked for; 0 (:data:`ORIGINAL`) is the frame as it is.
    size: int
    #: The size actually sent.
    width: int
    height: int
    prompt_tokens: int | None
    #: ``prompt_tokens`` minus the text-only prompt's; None if either is unknown.
    image_tokens: int | None
    #: Seconds for the request (one token out); set for failures too.
    latency_s: float | None
    #: Why the request failed; None when it answered.
    error: str | None = None

    @property
    def label(self) -> str:
        """``512 px (512×384)`` or ``original (1280×960)``."""
        name = "original" if self.size == ORIGINAL else f"{self.size} px"
        return f"{name} ({self.width}×{self.height})"


@dataclass(frozen=True)
class ProbeResult:
    """What :func:`probe_send_sizes` measured and the send size it chose.

    ``chosen`` is the ``max_edge`` to capture with (0: the frame as it is), or None when nothing
    could be measured: the caller keeps its default. ``reason`` says why, in a sentence.
    """

    rows: tuple[ProbeRow, ...]
    chosen: int | None
    #: Prompt tokens of the same request without the image; None if unknown.
    text_tokens: int | None
    reason: str

    @property
    def chosen_row(self) -> ProbeRow | None:
        """The row of the chosen size (None when nothing was chosen)."""
        return next((row for row in self.rows if row.size == self.chosen), None)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per row (with ``chosen``: bool), e.g. for a DataFrame or JSON."""
        return [{**asdict(row), "chosen": row.size == self.chosen} for row in self.rows]

    def table(self) -> str:
        """The rows as a fixed-width text table, the chosen row marked, and the reason."""
        header = ("send size", "sent", "prompt tok", "image tok", "latency", "")
        lines = [header]
        for row in self.rows:
            mark = "<- chosen" if row.size == self.chosen else (row.error or "")
            lines.append(
                (
                    "original" if row.size == ORIGINAL else str(row.size),
                    f"{row.width}×{row.height}",
                    _num(row.prompt_tokens),
                    _num(row.image_tokens),
                    "-" if row.latency_s is None else f"{row.latency_s * 1000:.0f} ms",
                    mark,
                )
            )
        lines.append(("text only", "", _num(self.text_tokens), "", "", ""))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        # Numbers right-aligned, words left-aligned.
        right = {2, 3, 4}
        text = [
            "  ".join(
                cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(line)
            ).rstrip()
            for line in lines
        ]
        return "\n".join([*text, self.reason])

    def __str__(self) -> str:
        return self.table()


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _plan(width: int, height: int, sizes: Sequence[int]) -> list[int]:
    """Distinct send sizes for this frame, smallest first, ending with :data:`ORIGINAL`.

    Sizes at or above the frame's longest edge are the original itself, so they collapse into it.
    """
    smaller = {s for s in sizes if 0 < s < max(width, height)}
    return [*sorted(smaller), ORIGINAL]


def _choose(rows: Sequence[ProbeRow], text: int | None) -> tuple[int | None, str]:
    """The largest size costing no more than the smallest one that answered; ties go to the largest."""
    answered = [row for row in rows if row.error is None]
    if not answered:
        return rows[0].size, f"every probe failed ({rows[0].error}); falling back to the smallest size"
    # Same text in every request, so prompt tokens rank sizes even when the text-only count failed.
    measured = [(row, row.prompt_tokens) for row in answered if row.prompt_tokens is not None]
    if not measured:
        return None, _NO_USAGE
    limit = measured[0][1]
    chosen = [row for row, tokens in measured if tokens <= limit][-1]
    if chosen.image_tokens is not None:
        cost = f"{chosen.image_tokens} image tokens"
    else:
        cost = f"{chosen.prompt_tokens} prompt tokens"
    dearer = [(row, tokens) for row, tokens in measured if tokens > limit]
    if not dearer:
        reason = f"no size costs more than the smallest ({cost}), so the largest: {chosen.label}"
    else:
        row, tokens = dearer[0]
        reason = (
            f"{chosen.label} is the largest size that costs no more than the smallest ({cost}); "
            f"{row.label} costs {tokens - limit} more"
        )
    if text is None:
        reason += " (the text-only prompt was not measured, so image tokens are unknown)"
    return chosen.size, reason


async def probe_send_sizes(
    client: VLMClient,
    params: ChatParams,
    jpeg: bytes,
    sizes: Sequence[int] = SEND_SIZES,
    *,
    quality: float = 0.8,
) -> ProbeResult:
    """Send ``jpeg`` at each of ``sizes`` (longest edge, px) and choose the send size.

    One request per size with ``max_tokens`` 1, temperature 0, no streaming, one after another
    (latencies are comparable). Sizes at or above the frame's longest edge collapse into the frame
    as it is, which is always probed. The choice is the largest size whose prompt costs no more
    than the smallest size's (ties go to the largest); if every request fails, the smallest size.
    A server that reports no usage gives ``chosen=None``.

    Token counts are the same whether or not the server caches prompts (llama-server counts cached
    tokens in ``prompt_tokens``); latencies are not: a server that caches may answer a size probed
    before faster. Failed requests become rows with ``error``; a ``jpeg`` that cannot be decoded
    raises ``ValueError``.
    """
    _check_quality(quality)
    image = await asyncio.to_thread(_decode, jpeg)
    height, width = image.shape[:2]
    probe = _probe_params(params)

    # First, so it also opens the connection the timed requests reuse.
    text: int | None = None
    # Without it image tokens stay unknown, but prompt tokens still rank the sizes; no usage or a
    # dead server shows in the image requests too.
    with contextlib.suppress(VLMError):
        text = await text_tokens(client, params)

    rows: list[ProbeRow] = []
    for size in _plan(width, height, sizes):
        if size == ORIGINAL:
            data, w, h = jpeg, width, height
        else:
            data, w, h = await asyncio.to_thread(_encode, image, size, quality)
        started = time.perf_counter()
        try:
            completion = await client.chat(probe, [data])
        except VLMError as exc:
            rows.append(ProbeRow(size, w, h, None, None, time.perf_counter() - started, str(exc)))
            continue
        prompt = completion.usage.prompt_tokens if completion.usage is not None else None
        rows.append(
            ProbeRow(size, w, h, prompt, image_tokens(completion.usage, text), completion.latency_s, None)
        )
    chosen, reason = _choose(rows, text)
    return ProbeResult(tuple(rows), chosen, text, reason)
