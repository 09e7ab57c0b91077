"""The first live slice, end to end with real parts.

JupyterLab (and Notebook 7) in headless Chromium with a fake camera → ``RealtimeVLM`` in a cell →
Send once → the kernel gets the JPEG over the comm → llama-server answers → the answer shows under
the video. Checks the frame the kernel got is the camera's picture and the server really saw it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from tests.browser.camera import QUADRANT_COLORS_BGR, QUADRANTS, quadrant_means
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer
from tests.servers.tiny_vlm import IMAGE_TOKENS

PROMPT = "What do you see?"
MAX_TOKENS = 8
COLOR_TOLERANCE = 8.0  # per channel, after 4:2:0 capture and JPEG at quality 0.8


def _cells(base_url: str, jpeg_path: Path) -> list[str]:
    show = (
        "from rtvlm_widget import RealtimeVLM\n"
        f"app = RealtimeVLM(base_url={base_url!r}, prompt={PROMPT!r}, "
        f"max_tokens={MAX_TOKENS}, temperature=0.0)\n"
        "app"
    )
    report = (
        "import json, pathlib\n"
        "a = app.last_answer\n"
        f"pathlib.Path({str(jpeg_path)!r}).write_bytes(a.jpeg)\n"
        "print('RESULT ' + json.dumps({'text': a.text, 'error': a.error, 'model': a.model,\n"
        "    'prompt_tokens': a.usage.prompt_tokens if a.usage else None,\n"
        "    'completion_tokens': a.usage.completion_tokens if a.usage else None,\n"
        "    'width': a.frame_width, 'height': a.frame_height,\n"
        "    'dropped': app.view.dropped_messages, 'count': len(app.history)}))"
    )
    return [show, report]


def _text_only_prompt_tokens(server: LlamaServer, model: str) -> int:
    """Prompt tokens of the same request without the image, straight from the server."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        "max_tokens": 1,
    }
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
    response.raise_for_status()
    tokens: int = response.json()["usage"]["prompt_tokens"]
    return tokens


def _run_slice(
    server_app: JupyterLab,
    page: NotebookPage,
    llama_server: LlamaServer,
    tmp_path: Path,
    name: str,
) -> dict[str, Any]:
    jpeg_path = tmp_path / "seen.jpg"
    server_app.put_notebook(name, _cells(llama_server.base_url, jpeg_path))
    panel = page.show_panel(server_app, name)
    panel.locator("button.rtvlm-send-once").click()

    answer_box = panel.locator(".rtvlm-answer textarea")
    # The log row appears once the whole answer is recorded (the box may show a partial first).
    panel.locator(".rtvlm-log tbody tr").first.wait_for(timeout=30_000)
    shown = answer_box.input_value()
    overlay = panel.locator(".rtvlm-overlay").text_content()

    assert page.run_cell(1), page.cell_text(1)
    line = next(x for x in page.cell_text(1).splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result.update(shown=shown, overlay=overlay, jpeg=jpeg_path.read_bytes(), panel=panel)
    return result


def _check(result: dict[str, Any], llama_server: LlamaServer) -> None:
    assert result["error"] is None
    assert result["count"] == 1 and result["dropped"] == 0
    # The answer under the video (and over it) is the server's answer, as text.
    assert result["text"].strip()
    assert result["shown"] == result["text"]
    assert result["overlay"] == result["text"]
    assert result["completion_tokens"] == MAX_TOKENS
    # The server saw an image: the same request without it costs the image's tokens less.
    grown = result["prompt_tokens"] - _text_only_prompt_tokens(llama_server, result["model"])
    assert grown == IMAGE_TOKENS, grown
    # What reached the kernel is the camera's picture.
    assert (result["width"], result["height"]) == (640, 480)
    image = cv2.imdecode(np.frombuffer(result["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (480, 640, 3)
    means = quadrant_means(image.astype(np.uint8))
    for quadrant in QUADRANTS:
        expected = QUADRANT_COLORS_BGR[quadrant]
        got = means[quadrant]
        assert all(abs(g - e) <= COLOR_TOLERANCE for g, e in zip(got, expected, strict=True)), (
            quadrant,
            got,
            expected,
        )


def test_send_once_in_jupyterlab(
    jupyter_lab: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    result = _run_slice(jupyter_lab, notebook_page, llama_server, tmp_path, "slice.ipynb")
    _check(result, llama_server)
    result["panel"].screenshot(path=str(artifacts_dir / "panel.png"))
    assert not notebook_page.unexpected_errors()


def test_send_once_in_notebook7(
    jupyter_notebook: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
    tmp_path: Path,
) -> None:
    result = _run_slice(jupyter_notebook, notebook_page, llama_server, tmp_path, "slice7.ipynb")
    _check(result, llama_server)
    assert not notebook_page.unexpected_errors()


def test_a_server_without_mmproj_is_explained_in_the_panel(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, text_only_llama_server: LlamaServer
) -> None:
    jupyter_lab.put_notebook(
        "no_mmproj.ipynb",
        [
            "from rtvlm_widget import RealtimeVLM\n"
            f"app = RealtimeVLM(base_url={text_only_llama_server.base_url + '/v1'!r})\n"
            "app",
            "print('ERROR', app.last_answer.error)",
        ],
    )
    panel = notebook_page.show_panel(jupyter_lab, "no_mmproj.ipynb")
    panel.locator("button.rtvlm-send-once").click()
    status = panel.locator(".rtvlm-status")
    status.filter(has_text="cannot take images").wait_for(timeout=30_000)
    shown = status.inner_text()
    assert "--mmproj" in shown
    assert f"{text_only_llama_server.base_url}/v1/chat/completions" in shown
    assert panel.locator(".rtvlm-answer textarea").input_value() == ""
    assert notebook_page.run_cell(1)
    assert "ERROR this server cannot take images" in notebook_page.cell_text(1)
