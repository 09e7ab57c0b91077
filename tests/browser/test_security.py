"""Secrets and untrusted output, in the real JupyterLab + Chromium against ``FaultyServer``.

- Model output, model names and the server's error words are untrusted: answers full of markup,
  script and link tricks are shown as text in the answer box, the overlay, the log, the status line
  and a comparison grid; nothing runs (``window.__pwned`` stays unset) and no element carrying
  the payload appears anywhere in the document.
- Frames and the key go only to the configured base URL: the kernel connects nowhere else (an
  audit hook on ``socket.connect`` in the kernel), the browser requests nothing outside JupyterLab.
- The key (wrong, then right, given as ``api_key=``) is not in the error messages, the DOM, the
  widget state, printed reprs, the notebook saved with Ctrl+S, the kernel's DEBUG log (httpx
  included) or the Jupyter server's log.

``test_controls_api.py`` already checks a key from ``$OPENAI_API_KEY`` and one typed in the panel
against the websocket traffic and a notebook saved with widget state; this file does not repeat it.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from playwright.sync_api import Request, WebSocket, expect

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.browser.test_controls_api import _WIDGET_STATE_JS, UI_TIMEOUT_MS, PanelDriver, wait_until
from tests.servers.faulty import FaultyServer, Reply, Status

MARK = "__pwned"
MODEL = f"<img src=x onerror=\"window.{MARK}='model'\">"
ANSWERS = [
    f"<script>window.{MARK}='script'</script>a cat",
    f'<img src=x onerror="window.{MARK}=\'img\'"><b class="{MARK}">bold</b>',
    f"[click me](javascript:window.{MARK}='md') ![x](x onerror=window.{MARK}='mdimg') "
    f"<a href=\"javascript:window.{MARK}='a'\">link</a>",
    f'<svg onload="window.{MARK}=\'svg\'"></svg><iframe srcdoc="<script>parent.{MARK}=1</script>"></iframe>',
]
ERROR = f"<img src=x onerror=\"window.{MARK}='error'\"> backend failed"

# Records every element added to the document (or attribute set) that the payload made: an
# element of a kind that runs or loads something, or a handler, link, source or class, carrying
# the mark. Attributes that only hold text (value, title, data-value) may carry it: they are text.
_WATCH_JS = """(mark) => {
  window.__injected = [];
  const active = new Set(['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'IMG', 'SVG', 'A']);
  const risky = (name) => name.startsWith('on') || ['href', 'src', 'srcdoc', 'class', 'style'].includes(name);
  const check = (el) => {
    if (!(el instanceof Element)) return;
    for (const node of [el, ...el.querySelectorAll('*')]) {
      const made = active.has(node.tagName.toUpperCase()) && node.outerHTML.includes(mark);
      const attr = [...node.attributes].some((a) => risky(a.name) && a.value.includes(mark));
      if (made || attr) window.__injected.push(node.outerHTML);
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes') check(r.target);
      for (const node of r.addedNodes || []) check(node);
    }
  }).observe(document, {subtree: true, childList: true, attributes: true});
}"""

_CANARY_JS = """(mark) => new Promise((resolve) => {
  const div = document.createElement('div');
  document.body.append(div);
  div.innerHTML = `<img src=x onerror="window['${mark}'] = 'canary'">`;
  setTimeout(() => {
    const seen = [window[mark], window.__injected.length > 0];
    div.remove();
    resolve(seen);
  }, 500);
})"""

# Elements that could run something, counted in the whole document.
_ACTIVE_JS = """() => document.querySelectorAll(
  'script:not([src]), iframe, object, embed, [onerror], [onload], a[href^="javascript"]').length"""


def test_model_output_and_server_words_are_shown_as_text_never_run(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage
) -> None:
    nb = notebook_page
    # Each step sets what every request gets (the panel also sends a text-only request to learn
    # what an image costs).
    with FaultyServer(models=(MODEL,)) as server:
        jupyter_lab.put_notebook(
            "hostile.ipynb",
            [
                "from rtvlm_widget import RealtimeVLM\n"
                f"app = RealtimeVLM(base_url={server.base_url!r}, send_size='original', max_tokens=8)\n"
                "app",
                f"app.compare(['Describe it.'], models=[{MODEL!r}])",
            ],
        )
        nb.open(jupyter_lab, "hostile.ipynb")
        nb.page.evaluate(_WATCH_JS, MARK)
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        panel.expect_models(MODEL, "Custom…")  # the server's model name, as option text
        baseline = nb.page.evaluate(_ACTIVE_JS)

        overlay = panel.root.locator(".rtvlm-overlay")
        for answer in ANSWERS:
            server.default = Reply(answer)
            panel.send_once()
            expect(panel.answer).to_have_value(answer)
            expect(overlay).to_have_text(answer)
            expect(panel.rows.last).to_have_attribute("title", answer)
            assert panel.row_cells()[1] == MODEL
        # The server's own words in an error: the status line and the log say them, as text.
        server.default = Status(500, {"error": {"message": ERROR}})
        panel.send_once()
        url = f"{server.base_url}/v1/chat/completions"
        said = f"error: {url} answered 500 Internal Server Error: {ERROR}; the server failed on this request"
        expect(panel.status).to_have_text(re.compile("^" + re.escape(said)))
        assert panel.row_cells()[3].startswith(said)
        # Test API repeats what the server says (its list and a failing request) in the status line.
        panel.click("button.rtvlm-test-api")
        panel.expect_status("^" + re.escape(f"API check failed: {url} answered 500"))
        # A comparison grid: the model name as a column head, the answer in a cell.
        server.default = Reply(ANSWERS[1])
        assert nb.run_cell(1), nb.cell_text(1)
        grid = nb.cell_output(1).locator(".rtvlm-grid")
        expect(grid.locator(".rtvlm-grid-head")).to_have_text(MODEL, timeout=UI_TIMEOUT_MS)
        expect(grid.locator(".rtvlm-grid-cell textarea")).to_have_value(ANSWERS[1], timeout=UI_TIMEOUT_MS)

        nb.page.wait_for_timeout(300)  # an onerror/onload would fire by now
        found = nb.page.evaluate("(mark) => [window[mark], window.__injected]", MARK)
        assert found == [None, []], found
        assert nb.page.evaluate(_ACTIVE_JS) == baseline
        # The watch itself works: the same payload put in as HTML runs and is caught.
        assert nb.page.evaluate(_CANARY_JS, MARK) == ["canary", True]
        assert len(server.chat_requests) >= len(ANSWERS) + 3
    assert not nb.unexpected_errors()


def _kernel_cells(base_url: str, key_file: Path, log_file: Path) -> list[str]:
    watch = (
        "import logging, pathlib, sys\n"
        # Everything logged at DEBUG (httpx and httpcore included) goes to a file the test reads.
        f"logging.basicConfig(filename={str(log_file)!r}, level=logging.DEBUG, force=True)\n"
        # ... and so does the kernel's own logger (it logs every message it gets at DEBUG).
        "kernel_log = get_ipython().kernel.log\n"
        "kernel_log.setLevel(logging.DEBUG)\n"
        f"kernel_log.addHandler(logging.FileHandler({str(log_file)!r}))\n"
        "connects, lookups = [], []\n"
        "def _audit(event, args):\n"
        "    if event == 'socket.connect':\n"
        "        connects.append(repr(args[1]))\n"
        "    elif event == 'socket.getaddrinfo':\n"
        "        lookups.append(repr(args[0]))\n"
        "sys.addaudithook(_audit)\n"
        "from rtvlm_widget import RealtimeVLM\n"
        f"app = RealtimeVLM(base_url={base_url!r}, api_key=pathlib.Path({str(key_file)!r}).read_text(),\n"
        "                  send_size='original', max_tokens=8, interval=0.2)\n"
        "app"
    )
    show = "print(repr(app)); print(app.last_answer); print(app.history.to_pandas().to_string())"
    return [watch, show]


def test_frames_and_the_key_go_only_to_base_url(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, tmp_path: Path
) -> None:
    nb = notebook_page
    key, wrong = "sk-right-" + secrets.token_hex(12), "sk-wrong-" + secrets.token_hex(12)
    key_file, log_file = tmp_path / "key.txt", tmp_path / "kernel-debug.log"
    key_file.write_text(wrong)  # the cell reads it: the notebook's source never holds a key
    requested: list[str] = []

    def on_request(request: Request) -> None:
        requested.append(request.url)

    def on_websocket(ws: WebSocket) -> None:
        requested.append(ws.url)

    nb.page.on("request", on_request)
    nb.page.on("websocket", on_websocket)
    with FaultyServer(api_key=key) as server:
        jupyter_lab.put_notebook("secrets.ipynb", _kernel_cells(server.base_url, key_file, log_file))
        nb.open(jupyter_lab, "secrets.ipynb")
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()

        # The wrong key: refused, said so, the key itself nowhere in the message.
        panel.send_once()
        url = f"{server.base_url}/v1/chat/completions"
        panel.expect_status(
            "^"
            + re.escape(f"error: {url} refused the request (401 Unauthorized: Invalid API Key); the key sent")
        )
        # The right key typed in the panel: answers, live for a moment.
        panel.key.click()
        panel.key.press_sequentially(key)
        panel.key.press("Enter")
        expect(panel.key).to_have_value("", timeout=UI_TIMEOUT_MS)
        panel.send_once()
        assert panel.row_cells()[3] == "ok"
        rows = panel.rows.count()
        panel.click("button.rtvlm-run")
        panel.wait_rows_at_least(rows + 5)
        panel.click("button.rtvlm-run")
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Start"))
        assert nb.run_cell(1), nb.cell_text(1)
        printed = nb.cell_text(1)
        kernel = _audit(nb)
        # Saved the way a person saves: Ctrl+S in the notebook.
        nb.cell(0).click()
        nb.page.keyboard.press("Control+s")
        wait_until(lambda: not _dirty(nb), "the notebook saved")
        saved = json.dumps(jupyter_lab.read_notebook("secrets.ipynb"))
        html = nb.page.evaluate("() => document.documentElement.outerHTML")
        widget_state = nb.page.evaluate(_WIDGET_STATE_JS, nb.panel_id)
        chats = server.chat_requests

    port = int(server.base_url.rsplit(":", 1)[1])
    # The kernel connected to the server and to nothing else; the browser only to JupyterLab.
    assert kernel["connects"] and set(kernel["connects"]) == {repr(("127.0.0.1", port))}, kernel
    assert set(kernel["lookups"]) <= {repr("127.0.0.1")}, kernel
    lab = jupyter_lab.url.split("://", 1)[1]
    outside = [u for u in requested if not re.match(rf"^(https?|wss?)://{re.escape(lab)}/|^(data|blob):", u)]
    assert requested and not outside, outside
    assert sum("image_url" in json.dumps(r.body) for r in chats) >= 6
    # Neither key anywhere a person or a log could read it.
    server_log = jupyter_lab.log_path.read_text(errors="replace")
    debug_log = log_file.read_text(errors="replace")
    # The log is full enough for the check to mean something: httpx's requests, the kernel's own
    # messages, and the key box's message, redacted.
    assert "HTTP Request: POST" in debug_log and "MESSAGE TYPE:comm_msg" in debug_log
    assert "(a message of the API key box; not logged)" in debug_log
    for secret in (key, wrong):
        for where, text in {
            "printed reprs": printed,
            "saved notebook": saved,
            "DOM": html,
            "widget state": widget_state,
            "kernel debug log": debug_log,
            "Jupyter server log": server_log,
        }.items():
            assert secret not in text, where
    assert not nb.unexpected_errors()


def _audit(nb: NotebookPage) -> dict[str, Any]:
    out = nb.run_code("import json; print('AUDIT ' + json.dumps({'connects': connects, 'lookups': lookups}))")
    line = next(x for x in out.splitlines() if x.startswith("AUDIT "))
    result: dict[str, Any] = json.loads(line.removeprefix("AUDIT "))
    return result


def _dirty(nb: NotebookPage) -> bool:
    dirty: bool = nb.page.evaluate(
        "(id) => [...window.jupyterapp.shell.widgets('main')].find((w) => w.id === id).context.model.dirty",
        nb.panel_id,
    )
    return dirty
