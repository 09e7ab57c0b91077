"""The saved view of a panel (``rtvlm_widget/_static.py``): what a notebook shows without a kernel.

End to end: a notebook runs headless (nbclient, a generated video as the kernel-side source,
llama-server and a server whose answer is hostile HTML), nbconvert turns it into HTML, and the page
must hold each panel's last frame (boxes drawn), latest answer (escaped) and latency plot — read
from the HTML (``tests/browser/test_static_live.py`` opens the same export in Chromium).
"""

from __future__ import annotations

import base64
import html
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import nbformat
import numpy as np
import numpy.typing as npt
from nbconvert import HTMLExporter

from rtvlm_widget import Answer, Box, ChatParams, Timing
from rtvlm_widget._annotate import annotate
from rtvlm_widget._static import FRAME_EDGE, Header, frame_jpeg, latency_svg, render
from tests.servers.llama import LlamaServer
from tests.servers.scripted import GatedServer
from tests.test_notebooks import execute, kernel_env
from tests.video_files import write_video

Image = npt.NDArray[np.uint8]

#: Would set ``window.__pwned`` if any of it ran; the JSON after it is a box to draw.
HOSTILE = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> & '
    '{"objects": [{"label": "ball", "box": [250, 250, 750, 750]}]}'
)

CELLS = [
    """import json, os
from rtvlm_widget import RealtimeVLM
facts = os.environ["FACTS_DIR"]
app = RealtimeVLM(base_url=os.environ["RTVLM_BASE_URL"], source=os.environ["RTVLM_VIDEO"], realtime=False,
                  max_tokens=12)
app""",
    """for _ in range(3):
    last = app.ask()
open(os.path.join(facts, "llama.jpg"), "wb").write(last.jpeg)
json.dump({"text": last.text}, open(os.path.join(facts, "llama.json"), "w"))""",
    """hostile = RealtimeVLM(base_url=os.environ["HOSTILE_URL"], source=os.environ["RTVLM_VIDEO"],
                      realtime=False, send_size=0)
hostile""",
    """bad = hostile.ask()
open(os.path.join(facts, "hostile.jpg"), "wb").write(bad.jpeg)
json.dump({"text": bad.text, "boxes": [[s.x1, s.y1, s.x2, s.y2, s.label] for s in bad.shapes]},
          open(os.path.join(facts, "hostile.json"), "w"))""",
]


class _Page(HTMLParser):
    """Each saved view's text and images, and every ``<script>`` element of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.views: list[dict[str, Any]] = []
        self.scripts: list[tuple[str, str]] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self._depth = 0  # open divs of the current saved view (0: outside one)
        self._script: str | None = None
        self._script_text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._script = found.get("type") or "text/javascript"
            self._script_text = []
        self._in_style = tag == "style"
        if self._depth:
            self.attributes += [(tag, name, value) for name, value in attrs]
            if tag == "div":
                self._depth += 1
            elif tag == "img":
                self.views[-1]["images"].append(found.get("src") or "")
        elif tag == "div" and "rtvlm-static" in (found.get("class") or "").split():
            self._depth = 1
            self.views.append({"text": "", "images": [], "svg": 0})
        if self._depth and tag == "svg":
            self.views[-1]["svg"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_text)))
            self._script = None
        if tag == "style":
            self._in_style = False
        if self._depth and tag == "div":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)
        elif self._depth and not self._in_style:
            self.views[-1]["text"] += data


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _decode(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return np.asarray(image, np.uint8)


def _data_url_image(src: str) -> Image:
    head, _, data = src.partition(",")
    assert head == "data:image/jpeg;base64", head[:40]
    return _decode(base64.b64decode(data))


def _difference(a: Image, b: Image) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _jpeg(image: Image) -> bytes:
    return bytes(cv2.imencode(".jpg", image)[1])


def _answer(seq: int, text: str = "fine", **fields: Any) -> Answer:
    values: dict[str, Any] = {
        "seq": seq,
        "text": text,
        "params": ChatParams("What do you see?", model="tiny", max_tokens=10, temperature=0.0),
        "latency_s": 0.05,
        "total_s": 0.08,
    }
    values.update(fields)
    return Answer(**values)


HEADER = Header("http://localhost:8080", "tiny", "What do you see?")
EXECUTABLE = {"text/javascript", "application/javascript", "module"}


# -- the renderer ---------------------------------------------------------------------------------


def test_everything_the_model_or_user_wrote_is_escaped() -> None:
    frame = _jpeg(np.full((48, 64, 3), 90, np.uint8))
    answers = [
        _answer(1, '<script>alert("a")</script>', jpeg=frame, frame_width=64, frame_height=48),
        _answer(2, "", error='<img src=x onerror="alert(1)"> failed'),
    ]
    header = Header("http://user:secret@host:1/<b>", "<i>model</i>", "<svg onload=alert(2)>?")
    bundle = render(answers, header, "t0k3n")
    page = _parse(bundle["text/html"])
    assert page.scripts == []
    # The only tags inside are the renderer's own: no attribute came from the strings above.
    assert not [a for a in page.attributes if a[1].startswith("on")], page.attributes
    (view,) = page.views
    assert len(view["images"]) == 1 and view["images"][0].startswith("data:image/jpeg;base64,")
    text = view["text"]
    for written in ('<script>alert("a")</script>', '<img src=x onerror="alert(1)"> failed'):
        assert written in text  # shown as text, character for character
    assert "<i>model</i>" in text and "<svg onload=alert(2)>?" in text
    assert "secret" not in bundle["text/html"] and "secret" not in bundle["text/plain"]
    assert '<script>alert("a")</script>' in bundle["text/plain"]


def test_no_answers_yet() -> None:
    bundle = render([], HEADER, "t")
    view = _parse(bundle["text/html"]).views[0]
    assert "no answers yet" in view["text"] and view["images"] == [] and view["svg"] == 0


def test_the_view_hides_only_where_its_panel_renders_in_a_jupyter_shell() -> None:
    page = render([], HEADER, "abc123")["text/html"]
    assert "body:has(#main .rtvlm-live-abc123) .rtvlm-static-abc123" in page
    assert 'class="rtvlm-static rtvlm-static-abc123"' in page


def test_saved_frame_is_the_one_sent_unless_drawn_on_or_too_big() -> None:
    small = np.full((360, 480, 3), 100, np.uint8)
    sent = _jpeg(small)
    plain = _answer(1, jpeg=sent, frame_width=480, frame_height=360)
    assert frame_jpeg(plain) == sent

    box = Box(0.25, 0.25, 0.75, 0.75, label="ball")
    drawn = _decode(frame_jpeg(_answer(2, jpeg=sent, frame_width=480, frame_height=360, shapes=(box,))))
    assert _difference(drawn, annotate(sent, [box])) < 3
    # The box's left edge (column 120), below its label: in the label's colour, not the frame's grey.
    edge = drawn[150:250, 120:122].reshape(-1, 3).mean(axis=0)
    assert np.abs(edge - 100).max() > 60, edge

    large = _jpeg(np.full((960, 1280, 3), 100, np.uint8))
    shrunk = _decode(frame_jpeg(_answer(3, jpeg=large, frame_width=1280, frame_height=960)))
    assert shrunk.shape == (FRAME_EDGE * 3 // 4, FRAME_EDGE, 3)


def test_latency_plot_has_a_bar_per_answer_that_succeeded() -> None:
    timing = Timing(0.0, 0.0, 0.0, 0.0, 0.02, 0.05, 0.06)
    answers = [_answer(i, timing=timing) for i in range(3)] + [_answer(9, "", error="boom")]
    svg = latency_svg(answers)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('fill="#4a90d9"') == 3 and svg.count('fill="#e07b00"') == 3
    assert "p50 60 ms" in svg
    assert latency_svg([_answer(1, "", error="boom")]) == ""


# -- end to end: a notebook executed headless and exported --------------------------------------------


def export(llama_server: LlamaServer, folder: Path) -> tuple[str, Path]:
    """Run ``CELLS`` headless against llama-server and the hostile server, export the notebook with
    nbconvert; returns the HTML and the folder of facts the cells wrote (frames sent, answers)."""
    clip = write_video(folder / "clip.avi", 20, 10, 320, 240)
    facts = folder / "facts"
    facts.mkdir()
    notebook_file = folder / "saved.ipynb"
    cells = [nbformat.v4.new_code_cell(c) for c in CELLS]  # type: ignore[no-untyped-call]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook_file)  # type: ignore[no-untyped-call]
    with GatedServer(HOSTILE, gated=False) as hostile:
        env = kernel_env(llama_server.base_url, clip)
        env |= {"FACTS_DIR": str(facts), "HOSTILE_URL": hostile.base_url}
        executed = execute(notebook_file, folder, env)
    page: str = HTMLExporter().from_notebook_node(executed)[0]  # type: ignore[no-untyped-call]
    return page, facts


def test_exported_notebook_shows_frames_answers_and_plots_and_no_script_of_the_model(
    llama_server: LlamaServer, tmp_path: Path, artifacts_dir: Path
) -> None:
    page, facts = export(llama_server, tmp_path)
    (artifacts_dir / "static-export.html").write_text(page, encoding="utf-8")

    parsed = _parse(page)
    assert len(parsed.views) == 2, [v["text"][:80] for v in parsed.views]
    plain, hostile_view = parsed.views

    # llama-server's panel: the last frame sent, the last answer, the plot.
    last = json.loads((facts / "llama.json").read_text())
    (image,) = plain["images"]
    assert _difference(_data_url_image(image), _decode((facts / "llama.jpg").read_bytes())) < 2
    assert last["text"].strip() and last["text"].strip() in plain["text"]
    # nbconvert writes the HTML out again: quotes in text come back unescaped, which is harmless.
    assert html.escape(last["text"].strip(), quote=False) in page
    assert plain["svg"] == 1 and "p50" in page
    assert "3 answers" in plain["text"]

    # The hostile answer: shown as text, its box drawn on the frame, not in any script that runs.
    bad = json.loads((facts / "hostile.json").read_text())
    assert bad["text"] == HOSTILE and bad["boxes"] == [[0.25, 0.25, 0.75, 0.75, "ball"]]
    assert HOSTILE in hostile_view["text"]
    assert html.escape(HOSTILE, quote=False) in page
    sent = (facts / "hostile.jpg").read_bytes()
    (image,) = hostile_view["images"]
    assert _difference(_data_url_image(image), annotate(sent, [Box(0.25, 0.25, 0.75, 0.75, "ball")])) < 3
    assert _difference(_data_url_image(image), _decode(sent)) > 1  # the box is there
    runnable = [text for kind, text in parsed.scripts if kind in EXECUTABLE]
    assert not [text for text in runnable if "__pwned" in text]
