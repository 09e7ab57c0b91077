"""Messages between the browser view and the kernel; the twin of the constants in ``js/widget.js``.

Every message is a dict with a ``kind``. Requests from the kernel carry a sequence id (``seq``) and
the front end answers with the same ``seq``: a ``frame`` (JPEG bytes in the first binary buffer,
never base64) or an ``error``. A click on Send once comes from the page as one ``ask`` that already
carries the frame taken at the click (the page's own ``seq``; no buffer: the page has no frame to
give, e.g. a kernel-side source, and the kernel takes one itself), so the request leaves without a
round trip to the page. With a kernel-side source the kernel instead sends the view a
``preview`` of each frame it uses (JPEG in the first buffer), unanswered. A final ``answer`` may
carry ``shapes`` (boxes and points in fractions 0–1 of the frame sent) for the view to draw over
the picture. A thinking model's ``reasoning`` goes in messages of its own, shown apart from the
answer and never over the picture. Nothing here knows about HTTP or widgets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import RtvlmError

__all__ = [
    "ASK",
    "CAPTURE",
    "ERROR",
    "FRAME",
    "FROM_VIEW",
    "MAX_FRAME_BYTES",
    "PREVIEW",
    "SHOWN",
    "SHOW_ANSWER",
    "SHOW_REASONING",
    "TOGGLE_LIVE",
    "TO_VIEW",
    "Ask",
    "CaptureFailed",
    "Frame",
    "ProtocolError",
    "Shown",
    "ToggleLive",
    "capture_request",
    "parse_reply",
    "preview",
    "show_answer",
    "show_reasoning",
]

# kernel -> front end
CAPTURE = "capture"
SHOW_ANSWER = "answer"
SHOW_REASONING = "reasoning"
PREVIEW = "preview"
# front end -> kernel
FRAME = "frame"
ERROR = "error"
TOGGLE_LIVE = "toggle_live"
SHOWN = "shown"
ASK = "ask"
#: Every kind each side sends: tests/test_protocol.py checks js/widget.js against these, so a kind
#: renamed or added on one side only fails there.
TO_VIEW = (CAPTURE, SHOW_ANSWER, SHOW_REASONING, PREVIEW)
FROM_VIEW = (FRAME, ERROR, TOGGLE_LIVE, SHOWN, ASK)

#: Larger frames are refused: far above any camera JPEG, well below the websocket's 10 MiB cap.
MAX_FRAME_BYTES = 8 * 1024 * 1024

_JPEG_MAGIC = b"\xff\xd8\xff"


class ProtocolError(RtvlmError, ValueError):
    """A message from the front end that does not follow the protocol; it is dropped and counted."""


@dataclass(frozen=True)
class Frame:
    """One camera frame as the browser encoded it."""

    seq: int
    jpeg: bytes = field(repr=False)
    width: int
    height: int
    #: Browser clock (ms since the epoch) when the frame was grabbed from the video.
    captured_at_ms: float = 0.0
    #: Browser time to draw the video frame onto the canvas.
    draw_ms: float = 0.0
    #: Browser time to encode the JPEG.
    encode_ms: float = 0.0
    #: Kernel time from asking the view for the frame to having it (set by the kernel); for a
    #: frame the page sent with a click: from the page grabbing it to the kernel having it.
    roundtrip_s: float = 0.0
    #: The page sent it with a click (``ask``), not in reply to the kernel's ``capture``.
    pushed: bool = False


@dataclass(frozen=True)
class Shown:
    """The view has the final answer ``seq`` on screen since ``shown_at_ms`` (browser epoch ms)."""

    seq: int
    shown_at_ms: float


@dataclass(frozen=True)
class Ask:
    """The user clicked Send once; ``frame`` is the one taken at the click (None: take one)."""

    frame: Frame | None


@dataclass(frozen=True)
class ToggleLive:
    """The user pressed Space in the panel (outside any text field)."""


@dataclass(frozen=True)
class CaptureFailed:
    """The front end could not capture a frame (no camera, permission denied, …)."""

    seq: int
    message: str


def capture_request(seq: int, *, max_edge: int = 0) -> dict[str, Any]:
    """Ask the view for a fresh frame; ``max_edge`` > 0 downscales in the browser first."""
    return {"kind": CAPTURE, "seq": seq, "max_edge": max_edge}


def show_answer(
    seq: int, text: str, *, final: bool = True, shapes: Iterable[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Tell the view the latest answer (shown as text, never as HTML); the view acknowledges a
    ``final`` one with ``shown`` once it is on screen.

    ``shapes`` (``Box.as_dict()`` / ``Point.as_dict()`` of ``_shapes.py``) are drawn over the
    picture; a final answer without them clears the ones drawn before, a partial one leaves them.
    Entries the view could not draw (unknown kind, a coordinate that is not a finite number) are
    left out: NaN would not even pass the comm's JSON.
    """
    message: dict[str, Any] = {"kind": SHOW_ANSWER, "seq": seq, "text": text, "final": final}
    if shapes is not None:
        message["shapes"] = [s for s in (_shape(shape) for shape in shapes) if s is not None]
    return message


def show_reasoning(seq: int, text: str, *, final: bool) -> dict[str, Any]:
    """Tell the view what a thinking model thought about ``seq`` (so far, unless ``final``): shown
    apart from the answer, as text; "" hides it."""
    return {"kind": SHOW_REASONING, "seq": seq, "text": text, "final": final}


_SHAPE_COORDS = {"box": ("x1", "y1", "x2", "y2"), "point": ("x", "y")}


def _shape(shape: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields the view draws of one shape (kind, coordinates, label), or None if unusable."""
    kind = shape.get("kind")
    names = _SHAPE_COORDS.get(kind) if isinstance(kind, str) else None
    if names is None:
        return None
    out: dict[str, Any] = {"kind": kind}
    for name in names:
        value = shape.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        out[name] = float(value)
    label = shape.get("label")
    out["label"] = "" if label is None else str(label)
    return out


def preview(width: int, height: int) -> dict[str, Any]:
    """Show a frame a kernel-side source is sending (JPEG in the message's first buffer)."""
    return {"kind": PREVIEW, "width": width, "height": height, "mime": "image/jpeg"}


def _int_field(content: Mapping[str, Any], name: str, minimum: int) -> int:
    value = content.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ProtocolError(f"{name!r} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_reply(
    content: object, buffers: Sequence[memoryview | bytes]
) -> Frame | CaptureFailed | Shown | ToggleLive | Ask:
    """Validate a message from the front end; raises ``ProtocolError`` for anything malformed."""
    if not isinstance(content, dict):
        raise ProtocolError(f"message is not an object: {type(content).__name__}")
    kind = content.get("kind")
    if kind == TOGGLE_LIVE:
        return ToggleLive()
    seq = _int_field(content, "seq", 0)
    if kind == SHOWN:
        shown = content.get("shown_at_ms")
        if not isinstance(shown, (int, float)) or isinstance(shown, bool):
            raise ProtocolError(f"'shown_at_ms' must be a number, got {shown!r}")
        return Shown(seq, float(shown))
    if kind == ERROR:
        return CaptureFailed(seq, str(content.get("message") or "capture failed"))
    if kind == ASK:
        # No frame (a kernel-side source, or the camera failed): the kernel takes one itself and
        # reports why it could not.
        return Ask(_frame(seq, content, buffers) if buffers else None)
    if kind != FRAME:
        raise ProtocolError(f"unknown message kind {kind!r}")
    return _frame(seq, content, buffers)


def _frame(seq: int, content: Mapping[str, Any], buffers: Sequence[memoryview | bytes]) -> Frame:
    if len(buffers) != 1:
        raise ProtocolError(f"a frame needs exactly one buffer, got {len(buffers)}")
    buffer = buffers[0]
    size = buffer.nbytes if isinstance(buffer, memoryview) else len(buffer)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    jpeg = bytes(buffer)
    if not jpeg.startswith(_JPEG_MAGIC):
        raise ProtocolError("frame buffer is not a JPEG")
    captured = content.get("captured_at_ms", 0.0)
    encode = content.get("encode_ms", 0.0)
    draw = content.get("draw_ms", 0.0)
    return Frame(
        seq=seq,
        jpeg=jpeg,
        width=_int_field(content, "width", 1),
        height=_int_field(content, "height", 1),
        captured_at_ms=float(captured) if isinstance(captured, (int, float)) else 0.0,
        encode_ms=float(encode) if isinstance(encode, (int, float)) else 0.0,
        draw_ms=float(draw) if isinstance(draw, (int, float)) else 0.0,
    )
