"""Boxes and points over the picture, in JupyterLab with the fake camera (640x480, four colour
quadrants: ``camera.py``).

The overlay canvas is read back in the page (``getImageData``) and the view is photographed, so the
checks see both what was drawn and where it shows: a box over the bottom-right quadrant must have
that quadrant's yellow inside its outline and the bottom-left quadrant's blue just outside, also
mirrored, letterboxed and over a kernel source's preview. End to end, llama-server's grammar makes
the random-weight model answer with boxes, which must land where their fractions put them on the
video as displayed (not on the smaller frame that was sent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from playwright.sync_api import Locator, expect

from rtvlm_widget._protocol import show_answer
from tests.browser.camera import QUADRANT_COLORS_BGR
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

WAIT_MS = 30_000
# Per channel: the fake camera's colours come back within a few units; the stroke colours exactly,
# give or take the edge's antialiasing.
COLOR_TOLERANCE = 30
# How far from a box's edge (screen px) the picture is sampled, clear of the 2 px line.
BESIDE = 8

BOX = {"kind": "box", "x1": 0.5, "y1": 0.5, "x2": 1.0, "y2": 1.0, "label": "bottom right"}
POINT = {"kind": "point", "x": 0.25, "y": 0.25, "label": "top left"}
# Same label as the point, small, in the top-left quadrant: the colour follows the label.
SMALL_BOX = {"kind": "box", "x1": 0.05, "y1": 0.08, "x2": 0.15, "y2": 0.18, "label": "top left"}

SETUP = """from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, max_tokens=3)
app"""

# The shapes canvas, and the picture it must cover computed independently: the shown element's box
# with the picture letterboxed into it (object-fit: contain). Rectangles as [left, top, width,
# height] in CSS px from the view's top-left corner.
_STATE_JS = """(view) => {
  const canvas = view.querySelector('canvas.rtvlm-shapes');
  const shown = [...view.querySelectorAll('video, canvas.rtvlm-preview')].find((e) => !e.hidden);
  const video = shown.tagName === 'VIDEO';
  const [w, h] = video ? [shown.videoWidth, shown.videoHeight] : [shown.width, shown.height];
  const origin = view.getBoundingClientRect();
  const box = shown.getBoundingClientRect();
  const scale = Math.min(box.width / w, box.height / h);
  const picture = [box.left - origin.left + (box.width - w * scale) / 2,
                   box.top - origin.top + (box.height - h * scale) / 2, w * scale, h * scale];
  const r = canvas.getBoundingClientRect();
  return {
    seq: Number(canvas.dataset.seq), count: Number(canvas.dataset.count),
    visible: !canvas.hidden && r.width > 0 && getComputedStyle(canvas).display !== 'none',
    rect: [r.left - origin.left, r.top - origin.top, r.width, r.height], picture,
    size: [canvas.width, canvas.height], dpr: window.devicePixelRatio,
  };
}"""

# For each [fx, fy] (fractions of the canvas), the most opaque canvas pixel within `radius` pixels
# of it as [r, g, b, a]; [0, 0, 0, 0] everywhere when nothing is drawn.
_PIXELS_JS = """(view, [points, radius]) => {
  const canvas = view.querySelector('canvas.rtvlm-shapes');
  if (canvas.hidden || !canvas.width || !canvas.height) return points.map(() => [0, 0, 0, 0]);
  const ctx = canvas.getContext('2d');
  return points.map(([fx, fy]) => {
    const cx = Math.min(canvas.width - 1, Math.round(fx * canvas.width));
    const cy = Math.min(canvas.height - 1, Math.round(fy * canvas.height));
    const x0 = Math.max(0, cx - radius), y0 = Math.max(0, cy - radius);
    const x1 = Math.min(canvas.width, cx + radius + 1), y1 = Math.min(canvas.height, cy + radius + 1);
    const d = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data;
    let best = [0, 0, 0, 0];
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > best[3]) best = [d[i], d[i + 1], d[i + 2], d[i + 3]];
    return best;
  });
}"""

# Pixels of the canvas that are not fully transparent.
_OPAQUE_JS = """(view) => {
  const canvas = view.querySelector('canvas.rtvlm-shapes');
  if (!canvas.width || !canvas.height) return 0;
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""

Image = npt.NDArray[np.uint8]


def _send(nb: NotebookPage, seq: int, text: str, *, final: bool = True, shapes: object = None) -> None:
    """``app.view.show_answer(...)`` in the kernel."""
    args = f"{seq}, {text!r}, final={final}" + (f", shapes={shapes!r}" if shapes is not None else "")
    nb.run_code(f"app.view.show_answer({args})")


def _state(view: Locator) -> dict[str, Any]:
    state: dict[str, Any] = view.evaluate(_STATE_JS)
    return state


def _wait_drawn(view: Locator, seq: int, count: int) -> dict[str, Any]:
    """The overlay once it shows answer ``seq`` with ``count`` shapes (0: nothing shown)."""
    canvas = view.locator("canvas.rtvlm-shapes")
    expect(canvas).to_have_attribute("data-seq", str(seq), timeout=WAIT_MS)
    expect(canvas).to_have_attribute("data-count", str(count), timeout=WAIT_MS)
    return _state(view)


def _until(view: Locator, js: str, what: str) -> None:
    """Poll ``js(view)`` in the page until it is true."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not view.evaluate(js):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _pixels(view: Locator, points: Sequence[tuple[float, float]], radius: int = 3) -> list[list[int]]:
    pixels: list[list[int]] = view.evaluate(_PIXELS_JS, [[list(p) for p in points], radius])
    return pixels


def _assert_covers_picture(state: dict[str, Any]) -> None:
    """The canvas lies exactly over the picture as shown, with pixels at the screen's density."""
    assert state["visible"], state
    assert all(abs(a - b) <= 1 for a, b in zip(state["rect"], state["picture"], strict=True)), state
    width, height = state["picture"][2:]
    assert abs(state["size"][0] - width * state["dpr"]) <= 1, state
    assert abs(state["size"][1] - height * state["dpr"]) <= 1, state


def _photo(view: Locator) -> Image:
    decoded = cv2.imdecode(np.frombuffer(view.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.asarray(decoded, np.uint8)


def _at(photo: Image, state: dict[str, Any], fx: float, fy: float, dx: int = 0) -> tuple[int, int, int]:
    """BGR of the view's photo at fractions (fx, fy) of the picture, ``dx`` screen px beside."""
    left, top, width, height = state["picture"]
    x = min(photo.shape[1] - 1, max(0, round(left + fx * width) + dx))
    y = min(photo.shape[0] - 1, max(0, round(top + fy * height)))
    b, g, r = (int(c) for c in photo[y, x])
    return (b, g, r)


def _near(got: Sequence[int], want: Sequence[int]) -> bool:
    return all(abs(g - w) <= COLOR_TOLERANCE for g, w in zip(got, want, strict=True))


def _photos(view: Locator) -> tuple[Image, Image]:
    """The view photographed with its shapes, and without them (the canvas made invisible)."""
    shown = _photo(view)
    canvas = "view.querySelector('canvas.rtvlm-shapes').style.visibility"
    view.evaluate(f"(view) => {{ {canvas} = 'hidden'; }}")
    try:
        bare = _photo(view)
    finally:
        view.evaluate(f"(view) => {{ {canvas} = ''; }}")
    return shown, bare


def _assert_edge_on_screen(
    view: Locator,
    state: dict[str, Any],
    fx: float,
    fy: float,
    inside: Sequence[int],
    outside: Sequence[int],
    beside: int = BESIDE,
) -> None:
    """On screen, a box's outline runs through (fx, fy) of the picture, over the border between
    ``inside`` (``beside`` px to the right; to the left when negative) and ``outside``."""
    shown, bare = _photos(view)
    height = state["picture"][3]
    change = max(
        sum(
            abs(a - b)
            for a, b in zip(
                _at(shown, state, fx, fy + dy / height, dx),
                _at(bare, state, fx, fy + dy / height, dx),
                strict=True,
            )
        )
        for dx in range(-3, 4)
        for dy in range(-3, 4)
    )
    assert change > 90, f"no outline on screen at {(fx, fy)} (largest change {change})"
    for dx, want in ((beside, inside), (-beside, outside)):
        seen = _at(bare, state, fx, fy, dx)
        assert _near(seen, want), (fx, fy, dx, seen, want)
        # Only the outline is drawn: the picture beside it shows through untouched.
        assert all(abs(a - b) <= 3 for a, b in zip(_at(shown, state, fx, fy, dx), seen, strict=True))


def test_protocol_carries_drawable_shapes_only() -> None:
    assert "shapes" not in show_answer(1, "x")
    message = show_answer(
        2,
        "x",
        shapes=[
            {**BOX, "score": 0.9},
            {"kind": "point", "x": float("nan"), "y": 0.5},
            {"kind": "polygon", "x": 0.1},
            {"kind": "point", "x": 1, "y": 0, "label": None},
        ],
    )
    assert message["shapes"] == [
        {"kind": "box", "x1": 0.5, "y1": 0.5, "x2": 1.0, "y2": 1.0, "label": "bottom right"},
        {"kind": "point", "x": 1.0, "y": 0.0, "label": ""},
    ]
    json.dumps(message, allow_nan=False)  # what the comm accepts
    assert show_answer(3, "x", shapes=[])["shapes"] == []


def test_boxes_and_points_land_on_the_displayed_video(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    jupyter_lab.put_notebook("overlays.ipynb", [SETUP.format(url=llama_server.base_url)])
    panel = nb.show_panel(jupyter_lab, "overlays.ipynb")
    view = panel.locator(".rtvlm-view")
    toggle = panel.locator(".rtvlm-shapes-toggle input[type=checkbox]")
    mirror = panel.locator(".rtvlm-mirror input[type=checkbox]")
    assert toggle.is_checked()
    yellow, blue = QUADRANT_COLORS_BGR["bottom_right"], QUADRANT_COLORS_BGR["bottom_left"]

    _send(nb, 7, "three things", shapes=[BOX, POINT, SMALL_BOX])
    state = _wait_drawn(view, 7, 3)
    _assert_covers_picture(state)
    # The box's four sides, in one colour; nothing inside it or in the quadrants it leaves out.
    left, right, top, bottom, small = _pixels(
        view, [(0.5, 0.7), (1.0, 0.75), (0.75, 0.5), (0.75, 1.0), (0.05, 0.13)]
    )
    (point,) = _pixels(view, [(0.25, 0.25)], radius=0)  # the dot's centre, inside its ring
    assert all(p[3] == 255 for p in (left, right, top, bottom, point, small)), (left, right, top, bottom)
    assert left == right == top == bottom
    empty = _pixels(view, [(0.75, 0.75), (0.25, 0.75), (0.75, 0.25)], radius=10)
    assert all(p[3] == 0 for p in empty), empty
    # The colour follows the label: the point and the small box share theirs, not the big box's.
    assert small[:3] == point[:3] != left[:3]
    # On screen: the outline shows, yellow inside it, the blue quadrant just outside.
    _assert_edge_on_screen(view, state, 0.5, 0.7, yellow, blue)

    # Mirrored preview: the box follows the yellow quadrant to the left; labels are not mirrored.
    mirror.check()
    expect(view.locator("video")).to_have_class("rtvlm-mirrored")
    _until(
        view,
        "(view) => { const c = view.querySelector('canvas.rtvlm-shapes');"
        " return c.getContext('2d').getImageData(0, Math.round(c.height * 0.7), 4, 1).data[3] === 255; }",
        "the box to move to the left edge",
    )
    state = _state(view)
    _assert_covers_picture(state)
    mirrored_left, mirrored_right = _pixels(view, [(0.0, 0.7), (0.5, 0.75)])
    (mirrored_point,) = _pixels(view, [(0.75, 0.25)], radius=0)
    assert all(p[3] == 255 for p in (mirrored_left, mirrored_right, mirrored_point))
    assert mirrored_left[:3] == left[:3] and mirrored_point[:3] == point[:3]
    assert all(p[3] == 0 for p in _pixels(view, [(0.75, 0.75), (0.25, 0.25)], radius=10))
    _assert_edge_on_screen(view, state, 0.5, 0.7, yellow, blue, beside=-BESIDE)
    mirror.uncheck()
    expect(view.locator("video")).not_to_have_class("rtvlm-mirrored")

    # A wider view pillarboxes the video: the canvas follows the picture, the box stays on yellow.
    view.evaluate("(view) => { view.style.aspectRatio = '2 / 1'; }")
    _until(
        view,
        "(view) => Math.abs(view.querySelector('canvas.rtvlm-shapes').getBoundingClientRect().width"
        " - view.getBoundingClientRect().height * 4 / 3) <= 1",
        "the canvas to follow the pillarboxed video",
    )
    state = _state(view)
    _assert_covers_picture(state)
    assert state["picture"][0] > 50, state  # really pillarboxed
    _assert_edge_on_screen(view, state, 0.5, 0.7, yellow, blue)
    view.evaluate("(view) => { view.style.aspectRatio = ''; }")

    # "Boxes over video" off hides them (the kernel's trait follows); on shows them again.
    toggle.uncheck()
    expect(view.locator("canvas.rtvlm-shapes")).to_be_hidden(timeout=WAIT_MS)
    assert nb.run_code("print(app.view.shapes_visible)").strip() == "False"
    toggle.check()
    state = _wait_drawn(view, 7, 3)
    _assert_covers_picture(state)
    assert _pixels(view, [(0.5, 0.7)])[0] == left

    # A streamed part leaves them; the next whole answer without shapes clears them.
    _send(nb, 8, "stream", final=False)
    expect(view.locator(".rtvlm-overlay")).to_have_text("stream", timeout=WAIT_MS)
    assert _state(view)["seq"] == 7 and _pixels(view, [(0.5, 0.7)])[0] == left
    _send(nb, 8, "nothing here")
    state = _wait_drawn(view, 8, 0)
    assert not state["visible"] and view.evaluate(_OPAQUE_JS) == 0
    _send(nb, 9, "a point", shapes=[POINT])
    _wait_drawn(view, 9, 1)
    _send(nb, 10, "none", shapes=[])
    assert not _wait_drawn(view, 10, 0)["visible"]
    assert not nb.unexpected_errors()


KERNEL_SOURCE = """import cv2, numpy as np
from rtvlm_widget import RealtimeVLM
picture = np.zeros((120, 320, 3), np.uint8)
picture[:, :160] = (50, 50, 200)
picture[:, 160:] = (60, 190, 60)
app = RealtimeVLM(base_url={url!r}, max_tokens=3, source=[picture])
app"""


def test_boxes_over_a_kernel_sources_preview_letterboxed(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    jupyter_lab.put_notebook("overlays_source.ipynb", [KERNEL_SOURCE.format(url=llama_server.base_url)])
    nb.open(jupyter_lab, "overlays_source.ipynb")
    assert nb.run_cell(0), nb.cell_text(0)
    view = nb.cell_output(0).locator(".rtvlm-panel .rtvlm-view")
    expect(view.locator(".rtvlm-badge")).to_have_attribute("data-state", "kernel", timeout=WAIT_MS)
    # A wide 320x120 frame (red | green) in the 4:3 view: bars above and below.
    nb.run_code("app.view.show_frame(bytes(cv2.imencode('.jpg', picture)[1]), 320, 120)")
    expect(view.locator("canvas.rtvlm-preview")).to_have_attribute("width", "320", timeout=WAIT_MS)
    _send(
        nb,
        3,
        "green half",
        shapes=[{"kind": "box", "x1": 0.5, "y1": 0.1, "x2": 0.9, "y2": 0.9, "label": "g"}],
    )
    state = _wait_drawn(view, 3, 1)
    _assert_covers_picture(state)
    assert state["picture"][1] > 50, state  # really letterboxed
    (edge,) = _pixels(view, [(0.5, 0.5)])
    assert edge[3] == 255
    # Further from the edge than on the camera: the JPEG blurs the red|green border under the line.
    _assert_edge_on_screen(view, state, 0.5, 0.5, (60, 190, 60), (50, 50, 200), beside=3 * BESIDE)
    assert not nb.unexpected_errors()


DETECT = """import copy, json
from rtvlm_widget import DETECT_PROMPT, DETECT_SCHEMA, RealtimeVLM
schema = copy.deepcopy(DETECT_SCHEMA)
schema["properties"]["objects"]["minItems"] = 1  # the random-weight model would often list none
app = RealtimeVLM(base_url={url!r}, prompt=DETECT_PROMPT, schema=schema, max_tokens=300,
                  send_size=256, temperature=1.0)
app"""

LAST = """a = app.last_answer
print('LAST ' + json.dumps({'n': len(app.history), 'seq': a and a.seq, 'text': a and a.text,
    'error': a and a.error, 'finish': a and a.finish_reason,
    'size': a and [a.frame_width, a.frame_height],
    'shapes': [s.as_dict() for s in a.shapes] if a else []}))"""


def _last(nb: NotebookPage) -> dict[str, Any]:
    out = nb.run_code(LAST)
    line = next(x for x in out.splitlines() if x.startswith("LAST "))
    last: dict[str, Any] = json.loads(line.removeprefix("LAST "))
    return last


def test_detected_boxes_land_where_the_answer_puts_them(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    jupyter_lab.put_notebook("overlays_detect.ipynb", [DETECT.format(url=llama_server.base_url)])
    panel = nb.show_panel(jupyter_lab, "overlays_detect.ipynb")
    view = panel.locator(".rtvlm-view")
    # The random-weight model writes valid JSON with at least one object under the grammar, but a
    # box may have no area (dropped): ask until an answer has boxes.
    tried: list[dict[str, Any]] = []
    for attempt in range(1, 31):
        panel.locator("button.rtvlm-send-once").click()
        deadline = time.monotonic() + WAIT_MS / 1000
        while (last := _last(nb))["n"] < attempt:
            assert time.monotonic() < deadline, "no answer after Send once"
            time.sleep(0.1)
        tried.append(last)
        if last["shapes"]:
            break
    assert last["shapes"], [(t["error"], t["finish"], t["text"]) for t in tried[-3:]]
    assert last["error"] is None and last["size"] == [256, 192], last

    state = _wait_drawn(view, last["seq"], len(last["shapes"]))
    _assert_covers_picture(state)
    # Fractions of the frame sent map onto the video as displayed, not onto the 256 px frame.
    assert state["size"][0] > 2 * 256, state
    for shape in last["shapes"]:
        if shape["kind"] == "box":
            x1, y1, x2, y2 = (shape[k] for k in ("x1", "y1", "x2", "y2"))
            xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
            sides = [(x1, ym), (x2, ym), (xm, y1), (xm, y2)]
        else:
            sides = [(shape["x"], shape["y"])]
        pixels = _pixels(view, sides)
        assert all(p[3] == 255 for p in pixels), (shape, pixels)
    assert not nb.unexpected_errors()
