"""Validation of what the front end sends: malformed messages are refused, never trusted."""

from __future__ import annotations

import pytest

from rtvlm_widget._protocol import (
    MAX_FRAME_BYTES,
    CaptureFailed,
    Frame,
    ProtocolError,
    Shown,
    parse_reply,
)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


def test_frame_with_one_jpeg_buffer() -> None:
    reply = parse_reply(
        {"kind": "frame", "seq": 3, "width": 640, "height": 480, "captured_at_ms": 12.5},
        [memoryview(JPEG)],
    )
    assert reply == Frame(seq=3, jpeg=JPEG, width=640, height=480, captured_at_ms=12.5)


def test_error_reply() -> None:
    assert parse_reply({"kind": "error", "seq": 4, "message": "no camera"}, []) == CaptureFailed(
        4, "no camera"
    )


@pytest.mark.parametrize(
    ("content", "buffers", "reason"),
    [
        ("frame", [JPEG], "not an object"),
        ({"kind": "video", "seq": 1}, [JPEG], "unknown message kind"),
        ({"kind": "frame", "seq": -1, "width": 1, "height": 1}, [JPEG], "'seq'"),
        ({"kind": "frame", "seq": True, "width": 1, "height": 1}, [JPEG], "'seq'"),
        ({"kind": "frame", "seq": 1, "width": 1, "height": 1}, [], "exactly one buffer"),
        ({"kind": "frame", "seq": 1, "width": 0, "height": 1}, [JPEG], "'width'"),
        ({"kind": "frame", "seq": 1, "width": 1, "height": 1}, [b"GIF89a"], "not a JPEG"),
        (
            {"kind": "frame", "seq": 1, "width": 1, "height": 1},
            [memoryview(bytes(MAX_FRAME_BYTES + 1))],
            "over the",
        ),
    ],
)
def test_malformed_messages_are_refused(content: object, buffers: list[bytes], reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_reply(content, buffers)


def test_shown_acknowledgement() -> None:
    assert parse_reply({"kind": "shown", "seq": 5, "shown_at_ms": 1.5e12}, []) == Shown(5, 1.5e12)
    with pytest.raises(ProtocolError, match="shown_at_ms"):
        parse_reply({"kind": "shown", "seq": 5, "shown_at_ms": "soon"}, [])
