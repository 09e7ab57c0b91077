"""The send size in the panel, against llama-server with the tiling (SmolVLM-style) projector: auto
probes in the background as soon as the camera is on and a model is chosen, and shows its table;
image tokens per frame show in the status line; a size picked in the dropdown downscales in the
browser before encoding."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

SETUP = """import json
from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, max_tokens=3)
app"""

STATE = """a = app.last_answer
print("STATE " + json.dumps({"size": [a.frame_width, a.frame_height], "image_tokens": a.image_tokens,
    "mode": app.send_size, "n": len(app.history)}))"""


def _state(page: NotebookPage) -> dict[str, Any]:
    assert page.run_cell(1), page.cell_text(1)
    line = next(x for x in page.cell_text(1).splitlines() if x.startswith("STATE "))
    state: dict[str, Any] = json.loads(line.removeprefix("STATE "))
    return state


def test_auto_probe_table_tokens_per_frame_and_a_chosen_size(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, sliced_llama_server: LlamaServer
) -> None:
    jupyter_lab.put_notebook("send_size.ipynb", [SETUP.format(url=sliced_llama_server.base_url), STATE])
    panel = notebook_page.show_panel(jupyter_lab, "send_size.ipynb")
    summary = panel.locator(".rtvlm-send-size-summary")
    table = panel.locator(".rtvlm-probe-table textarea")
    status = panel.locator(".rtvlm-status")
    # The probe runs by itself, before any click. A 640x480 camera costs 134 image tokens at every
    # size up to its own with this projector, so the frame goes as it is.
    expect(summary).to_have_text("auto → original, 134 image tokens", timeout=30_000)
    expect(table).to_be_visible()
    panel.locator("button.rtvlm-send-once").click()
    expect(status).to_contain_text("answer #", timeout=30_000)
    expect(status).to_contain_text("134 image tokens/frame", timeout=30_000)
    probe = table.input_value()
    assert "256" in probe and "640×480" in probe and "134" in probe, probe
    state = _state(notebook_page)
    assert state == {"size": [640, 480], "image_tokens": 134, "mode": "auto", "n": 1}

    # 256 px chosen by hand: the browser downscales before encoding; the cost shows.
    panel.locator(".rtvlm-send-size select").select_option(label="256 px")
    panel.locator("button.rtvlm-send-once").click()
    expect(panel.locator(".rtvlm-log tbody tr")).to_have_count(2, timeout=30_000)
    expect(summary).to_have_text("256 px (fixed)")
    state = _state(notebook_page)
    assert state == {"size": [256, 192], "image_tokens": 134, "mode": 256, "n": 2}
