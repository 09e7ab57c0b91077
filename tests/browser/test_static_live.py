"""The saved view under a panel, in the live page: hidden while the panel renders, refreshed as
answers arrive without re-rendering the panel (the camera is opened once), in the saved file, and
shown once the notebook is reopened without the panel's kernel; the same in Notebook 7 (hidden,
refreshed); and nbconvert's export of a notebook run headless, opened in Chromium.

Why a separate output and not a ``text/html`` beside the widget in the panel's own output: updating
that output makes JupyterLab build a second view of the widget, which calls getUserMedia again
(measured while choosing; see ``rtvlm_widget/_static.py``).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer
from tests.test_static_export import export

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

_SAVE_JS = """async (id) => {
  const app = window.jupyterapp;
  app.shell.activateById(id);
  await app.commands.execute('docmanager:save');
  const panel = [...app.shell.widgets('main')].find((w) => w.id === id);
  return panel.context.model.dirty;
}"""

CELL = """from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, model="tiny-vlm", max_tokens=6, interval=0.2)
app"""

FACTS = """import json
from rtvlm_widget._static import _fallbacks
fallback = _fallbacks[app]
print(json.dumps({"updates": fallback.updates, "stale": fallback.stale, "answers": len(app.history),
                  "last": app.last_answer.text, "token": fallback.token}))"""


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def _saved_view(outputs: list[dict[str, Any]]) -> str:
    """The saved view's HTML among a cell's outputs (nbformat JSON)."""
    for output in outputs:
        data = output.get("data", {})
        page = data.get("text/html", "")
        page = page if isinstance(page, str) else "".join(page)
        if 'class="rtvlm-static ' in page:
            return page
    raise AssertionError(f"no saved view among {[list(o.get('data', {})) for o in outputs]}")


def _camera_calls(nb: NotebookPage) -> int:
    return int(nb.page.evaluate("window.__getUserMediaCalls"))


def test_saved_view_is_hidden_live_refreshed_without_rerender_and_shown_when_reopened(
    notebook_page: NotebookPage, jupyter_lab: JupyterLab, llama_server: LlamaServer, artifacts_dir: Path
) -> None:
    nb = notebook_page
    name = "static_live.ipynb"
    jupyter_lab.put_notebook(name, [CELL.format(url=llama_server.base_url), FACTS])
    nb.page.add_init_script(_COUNT_CAMERA_JS)
    nb.open(jupyter_lab, name)
    assert nb.run_cell(0), nb.cell_text(0)
    output = nb.cell_output(0)
    panel = output.locator(".rtvlm-panel")
    panel.locator(".rtvlm-badge[data-state='live']").wait_for(timeout=WAIT_MS)
    assert _camera_calls(nb) == 1

    # In the live page the saved view is in the output but hidden, its output row included.
    saved = output.locator(".rtvlm-static")
    assert saved.count() == 1
    assert saved.is_hidden()
    row_shown = "(el) => getComputedStyle(el.closest('.jp-OutputArea-child')).display"
    assert saved.evaluate(row_shown) == "none"

    # Answers from the buttons (comm messages, not cells): Send once, then a short live run.
    rows = panel.locator(".rtvlm-log tbody tr")
    for count in (1, 2):
        panel.locator("button.rtvlm-send-once").click()
        _wait(lambda n=count: rows.count() >= n, f"{count} answers in the log")  # type: ignore[misc]
    panel.locator("button.rtvlm-run").click()
    time.sleep(3)
    panel.locator("button.rtvlm-run").click()
    time.sleep(0.5)
    nb.run_code("app.stop()")
    # The last refresh after the run may wait up to UPDATE_EVERY_S.
    time.sleep(2.5)
    facts = json.loads(nb.run_code(FACTS).strip())
    assert facts["answers"] >= 3 and facts["updates"] >= 2 and not facts["stale"], facts

    # Refreshed without re-rendering the panel: one view, one camera opening.
    assert _camera_calls(nb) == 1
    assert output.locator(".rtvlm-panel").count() == 1
    assert output.locator("video").count() == 1

    # The page's model of the output (what a save writes) has the newest answer.
    newest = html.escape(facts["last"])
    shown = _saved_view(nb.cell_outputs(0))
    assert f"({facts['answers']} answers" in shown and newest in shown
    assert f"rtvlm-static-{facts['token']}" in shown
    assert nb.page.evaluate(_SAVE_JS, nb.panel_id) is False
    saved_file = jupyter_lab.read_notebook(name)
    assert newest in _saved_view(saved_file["cells"][0]["outputs"])

    # Reopened without that kernel: no panel renders, and the saved view shows instead.
    nb.shutdown_kernel()
    nb.open(jupyter_lab, name)
    output = nb.cell_output(0)
    reopened = output.locator(".rtvlm-static")
    reopened.wait_for(state="visible", timeout=WAIT_MS)
    assert output.locator(".rtvlm-panel").count() == 0
    image = reopened.locator("img.rtvlm-static-frame")
    assert image.evaluate("(img) => img.complete && img.naturalWidth > 0")
    assert facts["last"].strip() in reopened.inner_text()
    assert reopened.locator("svg").count() == 1
    reopened.screenshot(path=str(artifacts_dir / "static-view-reopened.png"))


def test_saved_view_is_hidden_and_refreshed_in_notebook7(
    notebook_page: NotebookPage, jupyter_notebook: JupyterLab, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    name = "static_live_nb7.ipynb"
    jupyter_notebook.put_notebook(name, [CELL.format(url=llama_server.base_url), FACTS])
    nb.page.add_init_script(_COUNT_CAMERA_JS)
    nb.open(jupyter_notebook, name)
    assert nb.run_cell(0), nb.cell_text(0)
    output = nb.cell_output(0)
    panel = output.locator(".rtvlm-panel")
    panel.locator(".rtvlm-badge[data-state='live']").wait_for(timeout=WAIT_MS)
    saved = output.locator(".rtvlm-static")
    assert saved.count() == 1 and saved.is_hidden()
    panel.locator("button.rtvlm-send-once").click()
    panel.locator(".rtvlm-log tbody tr").first.wait_for(timeout=WAIT_MS)
    # Refreshed by the timer at most UPDATE_EVERY_S after the display, or by running FACTS (a cell's end).
    facts: dict[str, Any] = {}

    def refreshed() -> bool:
        facts.update(json.loads(nb.run_code(FACTS).strip()))
        return bool(facts["updates"] >= 1)

    _wait(refreshed, "the saved view refreshed", timeout=10)
    assert html.escape(facts["last"]) in _saved_view(nb.cell_outputs(0))
    assert saved.is_hidden() and _camera_calls(nb) == 1


def test_exported_html_shows_both_views_and_runs_nothing_the_model_wrote(
    chromium: Browser, llama_server: LlamaServer, tmp_path: Path, artifacts_dir: Path
) -> None:
    """nbconvert's HTML of a notebook run headless, opened with no kernel and no network."""
    page, _facts = export(llama_server, tmp_path)
    exported = tmp_path / "saved.html"
    exported.write_text(page, encoding="utf-8")
    context = chromium.new_context()
    try:
        browser_page = context.new_page()
        browser_page.route("http*://**", lambda route: route.abort())  # the CDN scripts, offline
        browser_page.goto(exported.as_uri(), wait_until="load")
        views = browser_page.locator(".rtvlm-static")
        assert views.count() == 2
        for index in range(2):
            view = views.nth(index)
            assert view.is_visible()
            assert view.locator("img").evaluate("(img) => img.complete && img.naturalWidth === 320")
            assert view.locator("svg").is_visible()
        assert browser_page.evaluate("window.__pwned === undefined")
        views.nth(1).screenshot(path=str(artifacts_dir / "static-export-hostile.png"))
    finally:
        context.close()
