"""A fake-camera picture for Chromium's `--use-file-for-fake-video-capture`.

The picture is four flat, strongly distinct colour quadrants so a test can check, on a
JPEG the kernel received, both that the frame came from *this* camera and that its
colours and orientation survived capture -> canvas -> JPEG -> decode.

Chromium reads Y4M frames as I420 and renders them as BT.601 *limited* range (checked by
experiment: these colours come back within about 1 unit per channel), so the RGB targets
are converted with those coefficients. Chromium only accepts 4:2:0 files (C444 gives
NotFoundError in getUserMedia), hence the half-resolution chroma planes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# Saturated-ish but inside the YUV gamut (no channel at 0/255, so nothing clips on the
# way back) and far apart in chroma so that neither 4:2:0 nor JPEG can blend them.
QUADRANT_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    "top_left": (50, 50, 200),  # red
    "top_right": (60, 190, 60),  # green
    "bottom_left": (200, 80, 40),  # blue
    "bottom_right": (40, 210, 220),  # yellow
}

QUADRANTS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")


def bgr_to_yuv_bt601(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range (Y 16..235, Cb/Cr 16..240), rounded to 8-bit codes."""
    b, g, r = (float(c) for c in bgr)
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    return tuple(int(np.clip(round(c), 0, 255)) for c in (y, u, v))  # type: ignore[return-value]


def yuv_bt601_to_bgr(yuv: tuple[int, int, int]) -> tuple[float, float, float]:
    """Inverse of `bgr_to_yuv_bt601` (unrounded): what a BT.601 renderer should show."""
    y, u, v = (float(c) for c in yuv)
    yy = 255.0 / 219.0 * (y - 16.0)
    r = yy + 255.0 / 224.0 * 1.402 * (v - 128.0)
    g = yy - 255.0 / 224.0 * (1.772 * 0.114 / 0.587 * (u - 128.0) + 1.402 * 0.299 / 0.587 * (v - 128.0))
    b = yy + 255.0 / 224.0 * 1.772 * (u - 128.0)
    return (b, g, r)


def write_quadrants_y4m(path: Path, width: int = 640, height: int = 480, frames: int = 1) -> None:
    """Write a C420 Y4M file of `frames` identical four-quadrant frames.

    One frame is enough: Chromium loops the file. Width and height must be multiples of
    4 so that the quadrant borders fall on chroma-sample borders (no blended chroma).
    """
    if width <= 0 or height <= 0 or width % 4 or height % 4:
        raise ValueError(f"width and height must be positive multiples of 4, got {width}x{height}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    hw, hh = width // 2, height // 2
    y_plane = np.empty((height, width), np.uint8)
    u_plane = np.empty((hh, hw), np.uint8)
    v_plane = np.empty((hh, hw), np.uint8)
    # (row slice, col slice) of each quadrant in luma pixels; chroma uses half of each.
    areas = {
        "top_left": (0, hh, 0, hw),
        "top_right": (0, hh, hw, width),
        "bottom_left": (hh, height, 0, hw),
        "bottom_right": (hh, height, hw, width),
    }
    for name, (r0, r1, c0, c1) in areas.items():
        y, u, v = bgr_to_yuv_bt601(QUADRANT_COLORS_BGR[name])
        y_plane[r0:r1, c0:c1] = y
        u_plane[r0 // 2 : r1 // 2, c0 // 2 : c1 // 2] = u
        v_plane[r0 // 2 : r1 // 2, c0 // 2 : c1 // 2] = v
    frame = b"FRAME\n" + y_plane.tobytes() + u_plane.tobytes() + v_plane.tobytes()
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420\n".encode("ascii")
    path.write_bytes(header + frame * frames)


def quadrant_means(bgr: npt.NDArray[Any]) -> dict[str, tuple[float, float, float]]:
    """Mean B, G, R of the central half (each way) of each quadrant of a BGR image.

    Accepts any numeric dtype (cv2.imdecode's typing is loose). Staying away from the
    borders keeps JPEG ringing and chroma bleed out of the means.
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR image, got shape {bgr.shape}")
    height, width = bgr.shape[:2]
    hh, hw = height // 2, width // 2
    out: dict[str, tuple[float, float, float]] = {}
    for i, name in enumerate(QUADRANTS):
        top = (i // 2) * hh
        left = (i % 2) * hw
        region = bgr[top + hh // 4 : top + 3 * hh // 4, left + hw // 4 : left + 3 * hw // 4]
        b, g, r = (float(c) for c in region.reshape(-1, 3).mean(axis=0))
        out[name] = (b, g, r)
    return out
