"""Send once in the real page: the frame leaves with the click, in one message, and the answer
comes back in one (JupyterLab and Notebook 7, against llama-server)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer
from tests.servers.scripted import GatedServer

# The kernel notes every message the page sends this view (kind, buffers) and every one it sends
# the page (kind), beside the product's own handlers.
CELL = """import json
from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, model='tiny-vlm', max_tokens=8, send_size={size!r})
from_page, to_page = [], []
app.view.on_msg(lambda _w, content, buffers: from_page.append((content.get('kind'), len(buffers))))
_send = app.view.send
def _noting(content, buffers=None):
    to_page.append(content.get('kind'))
    return _send(content, buffers)
app.view.send = _noting
def state():
    last, size = app.last_answer, app._controller.send_size
    return {{'from_page': from_page, 'to_page': to_page, 'answers': len(app.history),
            'requested': app.view.frames_requested, 'text': last.text if last else None,
            'ok': last.ok if last else None,
            'timing': last.timing.as_dict() if last and last.timing else None,
            'measuring': size.measuring, 'probed': size.probe is not None}}
app"""

STATE = "print('STATE ' + json.dumps(state()))"
RESET = "from_page.clear(); to_page.clear(); print('STATE ' + json.dumps(state()))"


def _state(nb: NotebookPage, cell: int) -> dict[str, Any]:
    nb.run_cell(cell, wait=False)
    return nb.tagged(cell, "STATE")


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_send_once_is_one_message_from_the_page_carrying_the_frame(
    kind: str, request: pytest.FixtureRequest, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    server: JupyterLab = request.getfixturevalue("jupyter_lab" if kind == "lab" else "jupyter_notebook")
    name = f"click_{kind}.ipynb"
    server.put_notebook(name, [CELL.format(url=llama_server.base_url, size="auto"), STATE, RESET])
    nb = notebook_page
    panel = nb.show_panel(server, name)
    panel.locator(".rtvlm-badge[data-state='live']").wait_for(timeout=30_000)
    # The send-size probe starts by itself once the camera is on and a model is chosen; let it end
    # so that only the click's messages are counted below.
    summary = panel.locator(".rtvlm-send-size-summary")
    expect(summary).to_have_text(re.compile(r"auto → "), timeout=30_000)
    before = _state(nb, 2)
    assert before["probed"] and not before["measuring"], before

    panel.locator("button.rtvlm-send-once").click()
    rows = panel.locator(".rtvlm-log tbody tr")
    expect(rows).to_have_count(1, timeout=30_000)
    after = _state(nb, 1)
    text = after["text"]
    assert after["ok"] and isinstance(text, str) and text
    # One message from the page for the click, with the JPEG; the kernel asked for no frame.
    asks = [m for m in after["from_page"] if m[0] != "shown"]
    assert asks == [["ask", 1]], after["from_page"]
    assert "capture" not in after["to_page"] and after["requested"] == before["requested"], after
    # The answer box and the overlay show the answer, written from the one answer message.
    expect(panel.locator(".rtvlm-answer textarea")).to_have_value(text, timeout=10_000)
    expect(panel.locator(".rtvlm-overlay")).to_have_text(text, timeout=10_000)
    assert [k for k in after["to_page"] if k == "answer"]
    # llama-server's own times are in the answer's timing.
    timing = after["timing"]
    assert isinstance(timing, dict) and timing["server_prefill_s"] is not None
    assert timing["encode_s"] > 0 and timing["transfer_s"] >= 0
    # The run button is the view's too: Start, then Stop while live, then Start again.
    run = panel.locator("button.rtvlm-run")
    expect(run).to_have_text(re.compile("Start"))
    run.click()
    expect(run).to_have_text(re.compile("Stop"), timeout=10_000)
    # Live answers arrive (waited for as "at least": a poll could miss an exact count).
    nb.page.wait_for_function(
        "(panel) => panel.querySelectorAll('.rtvlm-log tbody tr').length >= 3",
        arg=panel.element_handle(),
        timeout=30_000,
    )
    run.click()
    expect(run).to_have_text(re.compile("Start"), timeout=10_000)
    assert not nb.unexpected_errors(), nb.collect_console()


LIVE_CELL = """import json
from rtvlm_widget import RealtimeVLM, _static
app = RealtimeVLM(base_url={url!r}, model='gated', interval=0.0, send_size='original')
app"""

COUNT = """import time
start = time.monotonic()
app.start()
while len(app.history) < 40 and time.monotonic() - start < 60:
    await __import__('asyncio').sleep(0.05)
app.stop()
print('STATE ' + json.dumps({'answers': len(app.history), 'seconds': time.monotonic() - start,
                             'updates': _static._fallbacks[app].updates}))"""


def test_live_frames_do_not_refresh_the_saved_view_each_time(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage
) -> None:
    """The comm package fires IPython's post_execute for every widget message; the saved view
    under the panel is refreshed at most every 2 s (and at the end of a cell), not per frame."""
    with GatedServer("seen", gated=False) as server:
        jupyter_lab.put_notebook("live_static.ipynb", [LIVE_CELL.format(url=server.base_url), COUNT])
        notebook_page.show_panel(jupyter_lab, "live_static.ipynb")
        state = _state(notebook_page, 1)
    assert state["answers"] >= 40, state
    assert state["updates"] <= 2 + state["seconds"] / 2, state
