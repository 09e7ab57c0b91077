"""The Python API in real notebook cells: ask() blocking a cell, ask_async(), snapshot(), callbacks,
history and save_session — against llama-server, with the fake camera, in JupyterLab and Notebook 7."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.browser.camera import QUADRANT_COLORS_BGR, QUADRANTS, quadrant_means
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

SETUP = """import json, time
from rtvlm_widget import RealtimeVLM, load_session
app = RealtimeVLM(base_url={url!r}, prompt="What is in the picture?", max_tokens=8, interval=0.2)
def out(tag, **values):
    print(tag + " " + json.dumps(values))
app"""

ASK = """a = app.ask("Name a color.", max_tokens=5, temperature=0.0)
out("ASK", text=a.text, prompt=a.prompt, max_tokens=a.max_tokens, completion=a.usage.completion_tokens,
    jpeg=len(a.jpeg), size=[a.frame_width, a.frame_height], history=len(app.history), ok=a.ok)"""

# Queued right behind ASK (as "Run all" does): it must wait for ASK, then run once.
AFTER = """out("AFTER", seen_a=a.text, history=len(app.history))"""

ASYNC = """b = await app.ask_async(max_tokens=4)
out("ASYNC", text=b.text, prompt=b.prompt, completion=b.usage.completion_tokens, history=len(app.history))"""

SNAPSHOT = """img = app.snapshot()
cv2_ok = img.dtype.name == "uint8" and img.ndim == 3
import numpy as np
np.save({path!r}, img)
out("SNAP", shape=list(img.shape), ok=cv2_ok)"""

HISTORY = """h = app.history
df = h.to_pandas()
folder = app.save_session({folder!r})
back = load_session(folder)
out("HISTORY", n=len(h), rows=len(df), columns=sorted(df.columns)[:50], back=len(back),
    same_text=[x.text for x in back] == [x.text for x in h], jpegs=[len(x.jpeg) > 0 for x in back],
    repr=repr(h))"""

UNSHOWN = """from rtvlm_widget import CameraUnavailable
hidden = RealtimeVLM(base_url={url!r})   # never displayed: no browser view will answer
t0 = time.monotonic()
try:
    hidden.ask()
except CameraUnavailable as exc:
    out("UNSHOWN", error=str(exc), seconds=time.monotonic() - t0, recorded=len(hidden.history))"""


def _run(page: NotebookPage, index: int, tag: str, timeout: float = 60.0) -> dict[str, Any]:
    page.run_cell(index, wait=False)
    return page.tagged(index, tag, timeout)


def _check_ask(page: NotebookPage) -> None:
    # ASK blocks its cell; AFTER is queued behind it before ASK finishes.
    page.run_cell(1, wait=False)
    page.run_cell(2, wait=False)
    asked = page.tagged(1, "ASK")
    assert asked["ok"] and asked["text"].strip()
    assert asked["prompt"] == "Name a color." and asked["max_tokens"] == 5
    assert 1 <= asked["completion"] <= 5
    assert asked["size"] == [640, 480] and asked["jpeg"] > 1000
    assert asked["history"] == 1
    after = page.tagged(2, "AFTER")
    assert after == {"seen_a": asked["text"], "history": 1}
    # The blocked cell's answer reached the panel too.
    panel = page.cell_output(0).locator(".rtvlm-panel")
    assert panel.locator(".rtvlm-log tbody tr").count() == 1
    assert panel.locator(".rtvlm-answer textarea").input_value() == asked["text"]


@pytest.mark.parametrize("server_kind", ["lab", "notebook7"])
def test_ask_blocks_the_cell_and_returns_the_answer(
    server_kind: str,
    jupyter_lab: JupyterLab,
    jupyter_notebook: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
) -> None:
    server = jupyter_lab if server_kind == "lab" else jupyter_notebook
    server.put_notebook("ask.ipynb", [SETUP.format(url=llama_server.base_url), ASK, AFTER, ASYNC])
    notebook_page.show_panel(server, "ask.ipynb")
    _check_ask(notebook_page)
    answered = _run(notebook_page, 3, "ASYNC")
    assert answered["text"].strip() and answered["prompt"] == "What is in the picture?"
    assert 1 <= answered["completion"] <= 4 and answered["history"] == 2


def test_snapshot_history_and_saved_session(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer, tmp_path: Path
) -> None:
    snap_path, folder = tmp_path / "snap.npy", tmp_path / "session"
    cells = [
        SETUP.format(url=llama_server.base_url),
        ASK,
        SNAPSHOT.format(path=str(snap_path)),
        "app.ask(); app.ask(max_tokens=2); None",
        HISTORY.format(folder=str(folder)),
        UNSHOWN.format(url=llama_server.base_url),
    ]
    jupyter_lab.put_notebook("snapshot.ipynb", cells)
    notebook_page.show_panel(jupyter_lab, "snapshot.ipynb")
    _run(notebook_page, 1, "ASK")
    snap = _run(notebook_page, 2, "SNAP")
    assert snap == {"shape": [480, 640, 3], "ok": True}
    image = np.load(snap_path)
    means = quadrant_means(image)
    for quadrant in QUADRANTS:
        got, expected = means[quadrant], QUADRANT_COLORS_BGR[quadrant]
        assert all(abs(g - e) <= 30 for g, e in zip(got, expected, strict=True)), (quadrant, got)

    assert notebook_page.run_cell(3), notebook_page.cell_text(3)
    history = _run(notebook_page, 4, "HISTORY")
    assert history["n"] == 3 and history["rows"] == 3 and history["back"] == 3
    assert history["same_text"] and history["jpegs"] == [True, True, True]
    assert {"text", "prompt", "model", "prompt_tokens", "timing_http_s", "error"} <= set(history["columns"])
    assert history["repr"] == "History(3 answers, 0 failed)"
    # On disk: one JSON line per answer and its frame as a JPEG the camera made.
    lines = (folder / "answers.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["prompt"] == "Name a color."
    frame = cv2.imread(str(folder / json.loads(lines[0])["frame"]))
    assert frame is not None and frame.shape == (480, 640, 3)

    # A view that is not on screen cannot answer: ask() says so instead of hanging.
    unshown = _run(notebook_page, 5, "UNSHOWN", timeout=30)
    assert "no frame from the browser within 5 s" in unshown["error"]
    assert "displayed" in unshown["error"]
    assert unshown["seconds"] < 10 and unshown["recorded"] == 1


CALLBACKS = """seen, failures = [], []
@app.on_answer
def keep(answer):
    seen.append(answer.seq)
@app.on_answer
def broken(answer):
    raise ValueError("boom " + str(answer.seq))
app.on_error(lambda answer: failures.append(answer.error))
app.start()"""

CALLBACK_STATE = """out("CB", seen=len(seen), live=app._controller.live, failures=failures[:3],
    history=len(app.history))"""


def test_callbacks_run_and_their_errors_are_shown_without_stopping_live_mode(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    cells = [SETUP.format(url=llama_server.base_url), CALLBACKS, CALLBACK_STATE, "app.stop()"]
    jupyter_lab.put_notebook("callbacks.ipynb", cells)
    panel = notebook_page.show_panel(jupyter_lab, "callbacks.ipynb")
    assert notebook_page.run_cell(1), notebook_page.cell_text(1)
    state: dict[str, Any] = {}
    for _ in range(100):
        state = _run(notebook_page, 2, "CB")
        if state["seen"] >= 3:
            break
        notebook_page.page.wait_for_timeout(200)
    assert notebook_page.run_cell(3)
    # The good callback saw every answer; the raising one did not stop the loop.
    assert state["seen"] >= 3 and state["live"] and state["failures"] == []
    rows = panel.locator(".rtvlm-log tbody tr").all_text_contents()
    assert any("callback broken raised ValueError: boom" in r for r in rows), rows
