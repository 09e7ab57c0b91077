"""Animated PNG from same-sized PNG screenshots, without decoding them: each frame's compressed
image data is carried over as is (IDAT for the first frame, fdAT chunks for the others)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    if not png.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    pos = len(_SIGNATURE)
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        yield kind, png[pos + 8 : pos + 8 + length]
        pos += 12 + length


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def animate(frames: Sequence[bytes], delay_ms: int) -> bytes:
    """An APNG showing ``frames`` (PNG bytes, all the same size and format) ``delay_ms`` apart, looping."""
    if not frames:
        raise ValueError("no frames")
    header = dict(_chunks(frames[0]))[b"IHDR"]
    width, height = struct.unpack(">II", header[:8])
    out = [_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"acTL", struct.pack(">II", len(frames), 0))]
    sequence = 0
    for index, png in enumerate(frames):
        chunks = list(_chunks(png))
        if dict(chunks)[b"IHDR"] != header:
            raise ValueError(f"frame {index} differs in size or format from the first")
        # fcTL: sequence, size, offset, delay (ms/1000), dispose none, blend source.
        control = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, delay_ms, 1000, 0, 0)
        out.append(_chunk(b"fcTL", control))
        sequence += 1
        for kind, data in chunks:
            if kind != b"IDAT":
                continue
            if index == 0:
                out.append(_chunk(b"IDAT", data))
            else:
                out.append(_chunk(b"fdAT", struct.pack(">I", sequence) + data))
                sequence += 1
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
