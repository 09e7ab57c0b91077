"""Validation of what the front end sends: malformed messages are refused, never trusted.

And the names both sides write: message kinds, frame fields, shape kinds, resolutions and synced
traits, read out of js/*.js and compared with the Python definitions, so renaming one side fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from rtvlm_widget import _protocol
from rtvlm_widget._logview import LogView
from rtvlm_widget._plot import LatencyPlot
from rtvlm_widget._protocol import (
    FROM_VIEW,
    MAX_FRAME_BYTES,
    TO_VIEW,
    CaptureFailed,
    Frame,
    ProtocolError,
    Shown,
    capture_request,
    parse_reply,
    preview,
    show_answer,
    show_reasoning,
)
from rtvlm_widget._widget import RESOLUTIONS, CameraView

JS = Path(__file__).resolve().parent.parent / "js"

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


# -- the names JS and Python share -----------------------------------------------------------------


def _js(name: str) -> str:
    return (JS / name).read_text(encoding="utf-8")


def _found(pattern: str, source: str, what: str) -> list[Any]:
    # Nothing found means the JS changed shape: the pattern needs updating, not the check skipping.
    found: list[Any] = re.findall(pattern, source, flags=re.DOTALL)
    assert found, f"no {what} found in the JS ({pattern}): update this test's pattern"
    return found


def _sent_kinds(source: str) -> set[str]:
    return set(_found(r'\bsend\(\{\s*kind:\s*"(\w+)"', source, "sent message kinds"))


def _handled_kinds(source: str) -> set[str]:
    return set(_found(r'\bmsg\.kind === "(\w+)"', source, "handled message kinds"))


def _refusal(content: dict[str, Any]) -> str:
    """Why parse_reply refuses ``content`` ("" when it takes it)."""
    try:
        parse_reply(content, [])
    except ProtocolError as exc:
        return str(exc)
    return ""


def test_python_builds_and_parses_the_kinds_it_declares() -> None:
    # TO_VIEW / FROM_VIEW are what the JS is checked against: they must be what the code does.
    built = [capture_request(1), show_answer(1, "a"), show_reasoning(1, "b", final=True), preview(2, 2)]
    assert [m["kind"] for m in built] == list(TO_VIEW)
    assert "unknown message kind" in _refusal({"kind": "video", "seq": 1})
    for kind in FROM_VIEW:  # refused for missing fields at most, never as unknown
        assert "unknown message kind" not in _refusal({"kind": kind, "seq": 1}), kind


def test_camera_view_kinds_agree_with_widget_js() -> None:
    source = _js("widget.js")
    assert _sent_kinds(source) == set(FROM_VIEW)
    assert _handled_kinds(source) == set(TO_VIEW)


def test_log_view_kinds_agree_with_log_js() -> None:
    source = _js("log.js")
    view = LogView()
    sent: list[dict[str, Any]] = []
    view.send = lambda content, buffers=None: sent.append(content)
    cleared: list[bool] = []
    view.on_clear(lambda: cleared.append(True))
    view.add_note("a row")
    # Each kind the page sends gets its answer; an unknown one none (so "answered" means handled).
    replies = {}
    for kind in (*sorted(_sent_kinds(source)), "not-a-kind"):
        sent.clear()
        view._on_view_message(view, {"kind": kind}, [])
        replies[kind] = [m["kind"] for m in sent]
    assert replies == {"clear": ["rows"], "replay": ["rows"], "not-a-kind": []}
    assert cleared == [True]  # "clear" cleared, "replay" only resent
    assert _handled_kinds(source) == {"rows"}


def test_frame_fields_agree_with_widget_js() -> None:
    body = _found(r"const fields = \{(.*?)\};", _js("widget.js"), "frame fields")[0]
    names = re.findall(r"(\w+):", body)
    # The page's own measurements; seq and the JPEG travel apart, the rest the kernel adds itself.
    kernel_side = {"seq", "jpeg", "roundtrip_s", "pushed"}
    assert set(names) - {"mime"} == {f.name for f in dataclasses.fields(Frame)} - kernel_side
    values = {name: i + 1 for i, name in enumerate(names) if name != "mime"}
    frame = parse_reply({"kind": "frame", "seq": 1, "mime": "image/jpeg", **values}, [JPEG])
    assert {name: getattr(frame, name) for name in values} == values  # each one read, none defaulted


def test_shape_kinds_and_coordinates_agree_with_widget_js() -> None:
    drawable = _found(r'\b\w+\.kind === "(\w+)" && finite\(([^)]*)\)', _js("widget.js"), "shape checks")
    js = {kind: tuple(re.findall(r"\.(\w+)", args)) for kind, args in drawable}
    assert js == _protocol._SHAPE_COORDS


def test_resolutions_agree_with_widget_js() -> None:
    table = _found(r"const RESOLUTIONS\b[^{]*\{(.*?)\}\)", _js("widget.js"), "RESOLUTIONS")[0]
    # "auto" is no entry there: it asks the camera for nothing in particular.
    assert ["auto", *re.findall(r'"(\w+)":\s*\[', table)] == list(RESOLUTIONS)


@pytest.mark.parametrize(
    ("script", "widget"), [("widget.js", CameraView), ("log.js", LogView), ("plot.js", LatencyPlot)]
)
def test_synced_traits_agree_with_the_js(script: str, widget: type[Any]) -> None:
    source = _js(script)
    used = set(re.findall(r'\bmodel\.(?:get|set)\("(\w+)"', source)) | set(
        re.findall(r'"change:(\w+)"', source)
    )
    # Both ways: a trait the JS names must exist, and one the widget declares must be used.
    declared = {name for name in widget.class_traits(sync=True) if name in vars(widget)}
    assert used == declared
