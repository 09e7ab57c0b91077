"""A thinking model in the real page: the overlay shows only the answer, the reasoning is shown
apart (folded, as text), the Thinking control reaches the server, and a budget spent thinking is
said in the status line and the log (JupyterLab + Chromium + llama-server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.browser.test_controls_api import UI_TIMEOUT_MS, PanelDriver
from tests.servers.llama import LlamaServer
from tests.servers.thinking import thinking_llama_server

CELL = """import json
from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, model='tiny-thinker', max_tokens=60, temperature=0.0,
                  send_size='original')
app"""

LAST = """last = app.last_answer
print('LAST ' + json.dumps({'text': last.text, 'reasoning': last.reasoning, 'error': last.error,
                            'thinking': app._controller.params.thinking}))"""


@pytest.fixture(scope="module")
def thinker(
    llama_server_binary: Path,
    tiny_model: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[LlamaServer]:
    model, mmproj = tiny_model
    server = thinking_llama_server(
        llama_server_binary,
        model,
        mmproj,
        tmp_path_factory.mktemp("thinker-browser"),
        log_path=artifacts_dir / "llama-server-thinking-browser.log",
    )
    with server:
        yield server


def _last(nb: NotebookPage) -> dict[str, object]:
    nb.run_cell(1, wait=False)
    return nb.tagged(1, "LAST")


def test_reasoning_is_shown_apart_and_never_over_the_video(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, thinker: LlamaServer
) -> None:
    jupyter_lab.put_notebook("thinking.ipynb", [CELL.format(url=thinker.base_url), LAST])
    nb = notebook_page
    nb.show_panel(jupyter_lab, "thinking.ipynb")
    panel = PanelDriver(nb)
    overlay = panel.root.locator(".rtvlm-overlay")
    reasoning = panel.root.locator(".rtvlm-reasoning")
    expect(reasoning).to_be_hidden()

    panel.send_once()
    last = _last(nb)
    text, thought = str(last["text"]), str(last["reasoning"])
    assert last["error"] is None and text.strip() and len(thought) >= 8, last
    expect(overlay).to_have_text(text.strip(), timeout=UI_TIMEOUT_MS)
    expect(panel.answer).to_have_value(text, timeout=UI_TIMEOUT_MS)
    assert "<" not in overlay.inner_text() and thought.strip() not in overlay.inner_text()
    # Folded under the answer, with its size; opened, the thinking reads as text.
    expect(reasoning).to_be_visible()
    expect(reasoning.locator("summary")).to_have_text(re.compile(r"^Reasoning \(\d+ words\)$"))
    assert reasoning.get_attribute("open") is None
    reasoning.locator("summary").click()
    expect(reasoning.locator(".rtvlm-reasoning-text")).to_have_text(thought, timeout=UI_TIMEOUT_MS)
    prompt_tokens_default = int(panel.row_cells()[4].split("+")[0])

    # Thinking off goes to the chat template, which closes an empty thought in the prompt.
    panel.root.locator(".rtvlm-thinking select").select_option("off")
    panel.send_once()
    assert _last(nb)["thinking"] is False
    assert int(panel.row_cells()[4].split("+")[0]) > prompt_tokens_default

    # Too few tokens to finish thinking: said in the status line and the log; the answer shown
    # before stays, and the thinking that used the budget is shown apart.
    panel.root.locator(".rtvlm-thinking select").select_option("server default")
    panel.set_slider("rtvlm-max-tokens", "14")
    panel.send_once()
    cells = panel.row_cells()
    assert cells[3].startswith("reasoning only: ") and "used all 14 tokens (max tokens)" in cells[3], cells
    panel.expect_status(r"^error: .*used all 14 tokens \(max tokens\) thinking and gave no answer")
    expect(panel.answer).not_to_have_value("")
    last = _last(nb)
    expect(reasoning.locator(".rtvlm-reasoning-text")).to_have_text(str(last["reasoning"]))
