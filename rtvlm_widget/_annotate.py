"""Draw the shapes of an answer onto the frame the model saw (OpenCV, BGR).

OpenCV is imported when drawing, not with this module (its import is slow, and importing the
shapes or schema code must not need it).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from ._shapes import Box, Point, Shape

__all__ = ["PALETTE", "annotate", "pixel_box"]

BGR = tuple[int, int, int]
Image = npt.NDArray[np.uint8]

#: Colors (BGR) picked per label when no ``color`` is given: bright, and apart from each other.
PALETTE: tuple[BGR, ...] = (
    (0, 220, 0),
    (0, 140, 255),
    (255, 120, 0),
    (220, 0, 220),
    (0, 220, 220),
    (255, 220, 0),
    (60, 60, 255),
    (180, 255, 120),
)


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The box's first and last pixel columns and rows (inclusive) in a ``width`` x ``height``
    image: fraction 0 is the first pixel, fraction 1 the far edge (so the last pixel is
    ``round(x2 * width) - 1``)."""
    left = min(max(round(box.x1 * width), 0), width - 1)
    top = min(max(round(box.y1 * height), 0), height - 1)
    right = min(max(round(box.x2 * width) - 1, left), width - 1)
    bottom = min(max(round(box.y2 * height) - 1, top), height - 1)
    return left, top, right, bottom


def annotate(
    image: bytes | Image,
    shapes: Iterable[Shape],
    *,
    color: BGR | None = None,
    thickness: int | None = None,
) -> Image:
    """A copy of ``image`` (JPEG/PNG bytes or a BGR array) with the boxes and points drawn and
    labelled. ``color`` (BGR) for all shapes, else a color per label from :data:`PALETTE`;
    ``thickness`` defaults to about one pixel per 240 pixels of the shorter side."""
    import cv2

    canvas = _decode(image)
    height, width = canvas.shape[:2]
    line = thickness or max(1, round(min(width, height) / 240))
    for shape in shapes:
        ink = color or _label_color(shape.label)
        if isinstance(shape, Box):
            left, top, right, bottom = pixel_box(shape, width, height)
            # Drawn inside the box (an outline of width `line` from its edge inwards), so the
            # outermost pixels are exactly the box's edges.
            for inset in range(line):
                cv2.rectangle(
                    canvas,
                    (left + inset, top + inset),
                    (max(right - inset, left + inset), max(bottom - inset, top + inset)),
                    ink,
                    1,
                )
            _label(canvas, shape.label, (left, top), ink, line, below=False)
        elif isinstance(shape, Point):
            center = (
                min(round(shape.x * width), width - 1),
                min(round(shape.y * height), height - 1),
            )
            radius = 2 * line + 2
            cv2.circle(canvas, center, radius, ink, -1, cv2.LINE_AA)
            cv2.circle(canvas, center, radius, (0, 0, 0), max(1, line // 2), cv2.LINE_AA)
            _label(canvas, shape.label, (center[0] + radius + 2, center[1] - radius), ink, line, below=True)
    return canvas


def _decode(image: bytes | Image) -> Image:
    import cv2

    if isinstance(image, (bytes, bytearray, memoryview)):
        decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError("the image bytes are not a JPEG or PNG OpenCV can decode")
        return np.ascontiguousarray(decoded, dtype=np.uint8)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 BGR image, got {array.dtype} with shape {array.shape}")
    if array.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    copied: Image = array.copy()
    return copied


def _label_color(label: str) -> BGR:
    # crc32, not hash(): the same label gets the same color in every kernel.
    return PALETTE[zlib.crc32(label.encode("utf-8")) % len(PALETTE)]


def _label(canvas: Image, label: str, anchor: tuple[int, int], ink: BGR, line: int, *, below: bool) -> None:
    """``label`` on a filled tag in ``ink`` at ``anchor``: above a box's top-left corner (inside
    it when there is no room above), or from a point's side."""
    import cv2

    # Hershey fonts draw ASCII only; anything else would come out as "?" glyphs anyway.
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in label)[:40].strip()
    if not text:
        return
    height, width = canvas.shape[:2]
    scale = max(0.4, min(width, height) / 1200)
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, line)
    pad = 2
    tag_h = text_h + baseline + 2 * pad
    x = min(max(anchor[0], 0), max(width - text_w - 2 * pad, 0))
    y_top = anchor[1] if below else anchor[1] - tag_h
    if y_top < 0:
        y_top = anchor[1] if not below else 0  # no room above: inside the box, from its top
    y_top = min(y_top, max(height - tag_h, 0))
    cv2.rectangle(canvas, (x, y_top), (x + text_w + 2 * pad, y_top + tag_h), ink, -1)
    # Dark text on light tags, light on dark (perceived brightness of the BGR ink).
    light = 0.114 * ink[0] + 0.587 * ink[1] + 0.299 * ink[2] > 140
    cv2.putText(
        canvas,
        text,
        (x + pad, y_top + pad + text_h),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (0, 0, 0) if light else (255, 255, 255),
        line,
        cv2.LINE_AA,
    )
