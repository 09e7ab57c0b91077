"""Smoke test of the browser harness itself, in JupyterLab 4 and in Notebook 7.

A tiny inline anywidget grabs one frame of the fake camera, JPEG-encodes it in the
browser and sends the bytes over the comm; the kernel decodes them and prints the mean
colour of each quadrant, which must match the colours written into the Y4M file.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.browser.camera import QUADRANT_COLORS_BGR, QUADRANTS
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage

TOLERANCE = 8.0  # per channel; seen: within ~1 (4:2:0 + JPEG q0.8 on flat areas)

GRAB_CELL = '''
import anywidget, traitlets

class Grab(anywidget.AnyWidget):
    _esm = """
    export default {
      async render({ model, el }) {
        const status = document.createElement("pre");
        el.appendChild(status);
        try {
          const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
          const video = document.createElement("video");
          video.muted = true;
          video.playsInline = true;
          video.width = 160;
          video.srcObject = stream;
          el.appendChild(video);
          await video.play();
          // One decoded frame, not just "playing": before it the canvas may be blank.
          await new Promise((resolve) => video.requestVideoFrameCallback(() => resolve()));
          const canvas = document.createElement("canvas");
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          canvas.getContext("2d").drawImage(video, 0, 0);
          const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
          const buf = await blob.arrayBuffer();
          model.send({ kind: "frame" }, undefined, [buf]);
          stream.getTracks().forEach((t) => t.stop());
          status.textContent = `sent ${canvas.width}x${canvas.height} ${buf.byteLength} bytes`;
        } catch (err) {
          status.textContent = `grab error: ${err}`;
          model.send({ kind: "error", message: String(err) });
        }
      },
    };
    """
    count = traitlets.Int(0).tag(sync=True)

    def __init__(self) -> None:
        super().__init__()
        self.jpeg = None
        self.error = None
        self.on_msg(self._on_msg)

    def _on_msg(self, widget, content, buffers):
        if content.get("kind") == "frame" and buffers:
            self.jpeg = bytes(buffers[0])
        elif content.get("kind") == "error":
            self.error = content.get("message")

grab = Grab()
grab
'''

# Top-level `await asyncio.sleep` lets ipykernel 7 handle comm messages meanwhile (a
# time.sleep loop would not); normally the frame is already there.
MEASURE_CELL = """
import asyncio, json
import cv2, numpy as np
from tests.browser.camera import quadrant_means
for _ in range(200):
    if grab.jpeg is not None or grab.error is not None:
        break
    await asyncio.sleep(0.05)
assert grab.error is None, grab.error
assert grab.jpeg is not None, "no frame arrived"
img = cv2.imdecode(np.frombuffer(grab.jpeg, np.uint8), cv2.IMREAD_COLOR)
print("SHAPE", json.dumps(list(img.shape)))
print("MEANS", json.dumps(quadrant_means(img)))
"""


def _printed(text: str, tag: str) -> object:
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"no {tag!r} line in the cell output:\n{text}")


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_fake_camera_frame_reaches_kernel(
    kind: str, request: pytest.FixtureRequest, notebook_page: NotebookPage
) -> None:
    t0 = time.monotonic()
    server: JupyterLab = request.getfixturevalue("jupyter_lab" if kind == "lab" else "jupyter_notebook")
    t_server = time.monotonic()
    name = f"smoke_{kind}"
    server.put_notebook(name, [GRAB_CELL, MEASURE_CELL])

    notebook_page.open(server, name)
    t_open = time.monotonic()

    assert notebook_page.run_cell(0, timeout=30), notebook_page.cell_text(0)
    # The widget's own status line says when the frame was sent (or why not).
    status = notebook_page.cell_output(0).locator("pre")
    status.filter(has_text="sent").or_(status.filter(has_text="grab error")).wait_for(timeout=20_000)
    t_grab = time.monotonic()
    assert "grab error" not in status.inner_text(), status.inner_text()

    ok = notebook_page.run_cell(1, timeout=30)
    t_measure = time.monotonic()
    text = notebook_page.cell_text(1)
    assert ok, text

    assert _printed(text, "SHAPE") == [480, 640, 3]
    means = _printed(text, "MEANS")
    assert isinstance(means, dict)
    errors = {}
    for q in QUADRANTS:
        got, want = means[q], QUADRANT_COLORS_BGR[q]
        errors[q] = [round(g - w, 2) for g, w in zip(got, want, strict=True)]
    print(f"\n[{kind}] colour error (B, G, R) per quadrant: {errors}")
    print(
        f"[{kind}] server {server.startup_seconds:.2f} s (fixture {t_server - t0:.2f} s), "
        f"open {t_open - t_server:.2f} s, grab cell {t_grab - t_open:.2f} s, "
        f"measure cell {t_measure - t_grab:.2f} s, total {t_measure - t0:.2f} s"
    )
    bad = {q: e for q, e in errors.items() if max(abs(c) for c in e) > TOLERANCE}
    assert not bad, f"quadrant colours off by more than {TOLERANCE}: {bad} (means {means})"
    assert not notebook_page.unexpected_errors(), notebook_page.collect_console()
