"""A kernel-side video source in the real page: no camera opened, the preview shows the kernel's
frames, and llama-server's answers appear over it.

The generated clip's frames each show their index as a flat colour (``tests/video_files.py``), so
a pixel read from the preview canvas says which frame the page is showing.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer
from tests.video_files import write_video

WAIT_MS = 30_000

# Counts getUserMedia calls before any page script runs.
_COUNT_CAMERA_JS = """
window.__getUserMediaCalls = 0;
const md = navigator.mediaDevices;
if (md && md.getUserMedia) {
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = (constraints) => { window.__getUserMediaCalls += 1; return original(constraints); };
}
"""

# [r, g, b] at the centre of the preview canvas, or null before the first frame is drawn.
_PREVIEW_PIXEL_JS = """(panel) => {
  const canvas = panel.querySelector('canvas.rtvlm-preview');
  if (!canvas || !canvas.width || canvas.hidden) return null;
  const d = canvas.getContext('2d').getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data;
  return d[3] === 255 ? [d[0], d[1], d[2]] : 'transparent';
}"""

CELL = """import json
from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, model="tiny-vlm", interval=0.2, max_tokens=4, source={video!r})
app"""

# Prints the index of the frame the kernel handed out last, and the answers so far.
FACTS = """
import json
image = app._source.latest_array()
h, w = image.shape[:2]
b, g, r = (int(c) for c in image[h // 2, w // 2])
print('FACTS ' + json.dumps({'bgr': [b, g, r], 'answers': [a.text for a in app.history if a.ok],
                             'errors': [a.error for a in app.history if a.error],
                             'sent': app._source.frames_sent, 'asked_browser': app.view.frames_requested}))
"""


def _index(blue: int, green: int, red: int) -> int:
    assert abs(red - 128) <= 10, f"not one of the clip's frames: BGR {(blue, green, red)}"
    return round(blue / 25) + 10 * round(green / 25)


def _facts(page: NotebookPage) -> dict[str, object]:
    out = page.run_code(FACTS)
    line = next(x for x in out.splitlines() if x.startswith("FACTS "))
    facts: dict[str, object] = json.loads(line.removeprefix("FACTS "))
    return facts


def test_video_file_source_plays_in_the_preview_and_is_answered(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "clip.avi", 90, 10)  # 9 s, a new colour every 0.1 s
    jupyter_lab.put_notebook("source.ipynb", [CELL.format(url=llama_server.base_url, video=str(video))])
    page = notebook_page.page
    page.add_init_script(_COUNT_CAMERA_JS)
    notebook_page.open(jupyter_lab, "source.ipynb")
    assert notebook_page.run_cell(0), notebook_page.cell_text(0)
    panel = notebook_page.cell_output(0).locator(".rtvlm-panel")
    badge = panel.locator(".rtvlm-view .rtvlm-badge[data-state='kernel']")
    badge.wait_for(timeout=WAIT_MS)
    assert "kernel source: video clip.avi" in badge.inner_text()
    assert panel.locator(".rtvlm-view video").is_hidden()
    assert panel.locator(".rtvlm-badge-camera").inner_text().endswith("(kernel source: video clip.avi)")

    panel.locator("button.rtvlm-run").click()  # Start
    seen: list[int] = []
    overlay = panel.locator(".rtvlm-overlay")
    overlay_texts: set[str] = set()
    for _ in range(60):  # ~3 s of live mode, sampling the preview and the overlay every 50 ms
        overlay_texts.add(overlay.inner_text())
        pixel = panel.evaluate(_PREVIEW_PIXEL_JS)
        assert pixel != "transparent"  # the canvas is either empty (0×0) or holds a whole frame
        if pixel is not None:
            index = _index(pixel[2], pixel[1], pixel[0])
            if not seen or seen[-1] != index:
                seen.append(index)
        page.wait_for_timeout(50)
    page.wait_for_function("(el) => el.textContent.length > 0", arg=overlay.element_handle(), timeout=WAIT_MS)
    panel.locator("button.rtvlm-run").click()  # Stop
    page.wait_for_timeout(500)  # the last (throttled) preview lands
    facts = _facts(notebook_page)
    final_pixel = panel.evaluate(_PREVIEW_PIXEL_JS)
    camera_calls = page.evaluate("window.__getUserMediaCalls")
    console = notebook_page.unexpected_errors()

    # The browser camera was never opened nor asked for a frame.
    assert camera_calls == 0
    assert facts["asked_browser"] == 0
    # The preview followed the clip in real time: several frames, in playback order (a loop
    # restarts at 0), not one frozen picture.
    assert len(seen) >= 3, seen
    restarts = sum(1 for a, b in itertools.pairwise(seen) if b < a)
    assert restarts <= 1, seen
    # What the page shows last is the frame the kernel handed out last.
    assert final_pixel is not None
    kernel_bgr = facts["bgr"]
    assert isinstance(kernel_bgr, list)
    assert _index(final_pixel[2], final_pixel[1], final_pixel[0]) == _index(*kernel_bgr)
    # llama-server answered live, and the overlay over the preview showed its answers (a request
    # cancelled by Stop may leave a partial one there at the end, so they are sampled while live).
    answers = facts["answers"]
    assert isinstance(answers, list) and len(answers) >= 3, facts
    assert overlay_texts & set(answers), (overlay_texts, answers)
    assert not facts["errors"], facts["errors"]
    assert not console, console


ENDING_CELL = """from rtvlm_widget import RealtimeVLM, open_source
app = RealtimeVLM(base_url={url!r}, model="tiny-vlm", max_tokens=4,
                  source=open_source({video!r}, realtime=False, loop=False))
app"""


def test_a_file_played_to_its_end_says_so_in_the_panel(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "short.avi", 2, 10)
    jupyter_lab.put_notebook(
        "ending.ipynb", [ENDING_CELL.format(url=llama_server.base_url, video=str(video))]
    )
    notebook_page.open(jupyter_lab, "ending.ipynb")
    assert notebook_page.run_cell(0), notebook_page.cell_text(0)
    panel = notebook_page.cell_output(0).locator(".rtvlm-panel")
    panel.locator(".rtvlm-view .rtvlm-badge[data-state='kernel']").wait_for(timeout=WAIT_MS)
    send = panel.locator("button.rtvlm-send-once")
    rows = panel.locator(".rtvlm-log tbody tr")
    for count in (1, 2, 3):  # two frames, then the end
        send.click()
        notebook_page.page.wait_for_function(
            "([el, n]) => el.querySelectorAll('.rtvlm-log tbody tr').length >= n",
            arg=[panel.element_handle(), count],
            timeout=WAIT_MS,
        )
    ended = panel.locator(".rtvlm-view .rtvlm-badge[data-state='ended']")
    ended.wait_for(timeout=WAIT_MS)
    assert ended.inner_text() == "kernel source: video short.avi 160×120 (ended)"
    camera = panel.locator(".rtvlm-badge-camera").inner_text()
    assert "played to its end (opened with loop=False)" in camera, camera
    assert rows.count() == 3
    assert not notebook_page.unexpected_errors()
