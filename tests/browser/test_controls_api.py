"""The panel's API, generation, readout and log controls, driven through the real browser UI.

Every control is judged by its effect on what a real server receives (``GatedServer`` records
request bodies and headers) or returns (llama-server with the generated tiny model: answers are
random words, ``completion_tokens == max_tokens``, temperature 0 is deterministic per image).
Controls are used as a person would: typing into ipywidgets text fields and pressing Enter,
choosing dropdown options, clicking buttons, editing slider readouts.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, WebSocket, expect

from tests.browser.jupyter import JupyterLab
from tests.browser.page import WIDGET_MANAGER_JS, NotebookPage
from tests.servers.llama import LlamaServer
from tests.servers.scripted import GatedServer

UI_TIMEOUT_MS = 30_000

# A serialized widget state of every model the page's widget manager holds, read from the first
# widget renderer under the notebook panel (the manager is not on window; its renderers know it).
_WIDGET_STATE_JS = (
    "async (id) => {"
    + WIDGET_MANAGER_JS
    + """
  const manager = await findWidgetManager(id);
  return JSON.stringify(await manager.get_state({ drop_defaults: false }));
}"""
)

_SAVE_STATE_TOGGLE = "@jupyter-widgets/jupyterlab-manager:saveWidgetState"
_SET_SAVE_STATE_JS = """async ([command, wanted]) => {
  const commands = window.jupyterapp.commands;
  if (!commands.hasCommand(command)) throw new Error('no command ' + command);
  if (commands.isToggled(command) !== wanted) await commands.execute(command);
  const deadline = Date.now() + 10000;
  while (commands.isToggled(command) !== wanted) {
    if (Date.now() > deadline) throw new Error('could not set ' + command + ' to ' + wanted);
    await new Promise((r) => setTimeout(r, 50));
  }
  return commands.isToggled(command);
}"""

_SAVE_JS = """async (id) => {
  const app = window.jupyterapp;
  app.shell.activateById(id);
  await app.commands.execute('docmanager:save');
  const panel = [...app.shell.widgets('main')].find((w) => w.id === id);
  return panel.context.model.dirty;
}"""


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class PanelDriver:
    """The rtvlm panel in one cell's output, used through its DOM as a person would."""

    def __init__(self, nb: NotebookPage, cell: int = 0) -> None:
        self.nb = nb
        self.page: Page = nb.page
        self.root = nb.cell_output(cell).locator(".rtvlm-panel")
        self.status = self.root.locator(".rtvlm-status")
        self.answer = self.root.locator(".rtvlm-answer textarea")
        self.rows = self.root.locator(".rtvlm-log tbody tr")
        self.model = self.root.locator(".rtvlm-model select")
        self.custom_model = self.root.locator(".rtvlm-custom-model")
        self.key = self.root.locator(".rtvlm-api-key input")

    def wait_camera_live(self) -> None:
        self.root.locator(".rtvlm-badge[data-state='live']").wait_for(timeout=UI_TIMEOUT_MS)

    def enter_text(self, name: str, value: str) -> None:
        """Type ``value`` into the ipywidgets text field ``.name`` and press Enter."""
        field = self.root.locator(f".{name} input")
        field.click()
        field.press("Control+A")
        field.press_sequentially(value)
        field.press("Enter")

    def set_slider(self, name: str, value: str) -> None:
        """Edit the slider's readout (contenteditable in ipywidgets 8): click, type, Enter."""
        readout = self.root.locator(f".{name} .widget-readout")
        readout.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(value)
        self.page.keyboard.press("Enter")
        expect(readout).to_have_text(re.compile(rf"^{re.escape(value)}(\.0+)?$"), timeout=UI_TIMEOUT_MS)

    def click(self, selector: str) -> None:
        self.root.locator(selector).click()

    def expect_models(self, *options: str) -> None:
        expect(self.model.locator("option")).to_have_text(list(options), timeout=UI_TIMEOUT_MS)

    def expect_status(self, pattern: str) -> str:
        expect(self.status).to_have_text(re.compile(pattern), timeout=UI_TIMEOUT_MS)
        return self.status.inner_text()

    def send_once(self) -> None:
        """Click Send once and wait for its answer (or failure) to land in the log."""
        before = self.rows.count()
        self.click("button.rtvlm-send-once")
        expect(self.rows).to_have_count(before + 1, timeout=UI_TIMEOUT_MS)

    def wait_rows_at_least(self, count: int) -> None:
        # Not to_have_count: while live, rows arrive faster than it polls and it can miss the value.
        wait_until(lambda: self.rows.count() >= count, f"{count} rows in the request log")

    def row_cells(self, index: int = -1) -> list[str]:
        row = self.rows.nth(self.rows.count() - 1 if index == -1 else index)
        return [cell.strip() for cell in row.locator("td").all_inner_texts()]


def kernel_state(nb: NotebookPage, cell: int) -> dict[str, Any]:
    """Run the probe cell ``cell``, which prints one ``STATE {json}`` line."""
    assert nb.run_cell(cell), nb.cell_text(cell)
    line = next(x for x in nb.cell_text(cell).splitlines() if x.startswith("STATE "))
    state: dict[str, Any] = json.loads(line.removeprefix("STATE "))
    return state


PROBE_CELL = (
    "import json\n"
    "print('STATE ' + json.dumps({\n"
    "    'base_url': app.base_url,\n"
    "    'history': [{'text': a.text, 'error': a.error, 'model': a.model, 'temperature': a.temperature,\n"
    "                 'max_tokens': a.max_tokens, 'created_at': a.created_at, 'total_s': a.total_s,\n"
    "                 'timing': a.timing.as_dict() if a.timing else None,\n"
    "                 'completion_tokens': a.usage.completion_tokens if a.usage else None}\n"
    "                for a in app.history],\n"
    "    'key_field': app._panel.key.value,\n"
    "    'autoscroll': app._panel.log.autoscroll,\n"
    "    'overlay': app.view.overlay,\n"
    "    'log_rows': len(app._panel.log.rows),\n"
    "}))"
)


def _bearer(server: GatedServer, index: int = -1) -> str:
    headers = {k.lower(): v for k, v in server.headers[index].items()}
    return headers.get("authorization", "")


def _prompt_text(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return "".join(part["text"] for part in content if part["type"] == "text")


# -- 1-4: Base URL, model list, API key, Test API -------------------------------------------------


def test_api_controls_base_url_models_key_and_test_api(
    jupyter_lab: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
    text_only_llama_server: LlamaServer,
    tmp_path: Path,
) -> None:
    env_key = "sk-env-" + secrets.token_hex(12)
    typed_key = "sk-typed-" + secrets.token_hex(12)
    # The cell reads the key from a file, so the notebook's own source never contains it.
    key_file = tmp_path / "key.txt"
    key_file.write_text(env_key)
    nb = notebook_page
    # Everything the kernel sends to the page (comm messages included) passes these websockets.
    received: list[bytes] = []

    def on_websocket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda data: received.append(data.encode() if isinstance(data, str) else data))

    nb.page.on("websocket", on_websocket)
    with GatedServer("fine", models=("alpha", "beta"), gated=False) as server:
        jupyter_lab.put_notebook(
            "controls_api.ipynb",
            [
                "import os, pathlib\n"
                f"os.environ['OPENAI_API_KEY'] = pathlib.Path({str(key_file)!r}).read_text()\n"
                "from rtvlm_widget import RealtimeVLM\n"
                f"app = RealtimeVLM(base_url={server.base_url!r}, max_tokens=8, temperature=0.0)\n"
                "app",
                PROBE_CELL,
            ],
        )
        nb.open(jupyter_lab, "controls_api.ipynb")
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()

        # The key box is a password field, empty, saying a key is set (from $OPENAI_API_KEY).
        assert panel.key.get_attribute("type") == "password"
        expect(panel.key).to_have_value("")
        expect(panel.key).to_have_attribute("placeholder", "key set (hidden)")

        # Model dropdown: filled from GET /v1/models, first model chosen; what is chosen is sent.
        panel.expect_models("alpha", "beta", "Custom…")
        expect(panel.model).to_have_value("alpha")
        expect(panel.custom_model).to_be_hidden()
        panel.send_once()
        assert server.requests[-1]["model"] == "alpha"
        assert _bearer(server) == f"Bearer {env_key}"
        panel.model.select_option(label="beta")
        panel.send_once()
        assert server.requests[-1]["model"] == "beta"

        # A key typed in the panel: the field empties, the new key is what the server gets.
        panel.key.click()
        panel.key.press_sequentially(typed_key)
        panel.key.press("Enter")
        expect(panel.key).to_have_value("", timeout=UI_TIMEOUT_MS)
        panel.send_once()
        assert _bearer(server) == f"Bearer {typed_key}"
        assert server.requests[-1]["model"] == "beta"

        # Refresh re-reads the list.
        server.models = ("gamma", "delta")
        panel.click("button.rtvlm-refresh")
        panel.expect_models("gamma", "delta", "Custom…")
        expect(panel.model).to_have_value("gamma")
        panel.send_once()
        assert server.requests[-1]["model"] == "gamma"

        # "Custom…" shows a text field; the id typed there is what the server receives.
        panel.model.select_option(label="Custom…")
        expect(panel.custom_model).to_be_visible()
        panel.enter_text("rtvlm-custom-model", "org/my-custom-vlm:q4")
        panel.send_once()
        assert server.requests[-1]["model"] == "org/my-custom-vlm:q4"
        panel.model.select_option(label="delta")
        expect(panel.custom_model).to_be_hidden()
        panel.send_once()
        assert server.requests[-1]["model"] == "delta"

        # A base URL without a scheme: a clear message, and nothing is sent anywhere.
        sent = len(server.requests)
        panel.enter_text("rtvlm-base-url", "localhost:8080")
        panel.expect_status(
            r"error: base_url 'localhost:8080' is not an http\(s\) URL.*http://localhost:8080"
        )
        expect(panel.root.locator(".rtvlm-badge-api")).to_have_text("API: bad base URL")
        rows = panel.rows.count()
        panel.click("button.rtvlm-send-once")
        panel.expect_status(r"not sent: base_url 'localhost:8080' is not an http\(s\) URL")
        panel.click("button.rtvlm-test-api")
        panel.click("button.rtvlm-run")
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Start"))
        state = kernel_state(nb, 1)  # a round trip through the kernel after the clicks
        assert len(server.requests) == sent
        assert panel.rows.count() == rows
        expect(panel.root.locator(".rtvlm-badge-api")).to_have_text("API: bad base URL")
        assert panel.status.inner_text().startswith("not sent: base_url 'localhost:8080'")
        assert state["base_url"] == server.base_url

        # The same server root with /v1 (Ollama style): answers come from llama-server.
        panel.enter_text("rtvlm-base-url", llama_server.base_url + "/v1")
        panel.expect_models("tiny-vlm", "Custom…")
        expect(panel.model).to_have_value("tiny-vlm")
        panel.send_once()
        cells = panel.row_cells()
        assert cells[1] == "tiny-vlm" and cells[3] == "ok", cells
        assert cells[4].endswith("+8"), cells  # completion_tokens == max_tokens: llama-server answered
        state = kernel_state(nb, 1)
        assert state["base_url"] == llama_server.base_url
        assert state["history"][-1]["error"] is None
        assert len(server.requests) == sent

        # Test API against the vision server: models, text and image latency, accepts images.
        panel.click("button.rtvlm-test-api")
        panel.expect_status(r"^API ok: 1 model\(s\), text \d+ ms, image \d+ ms, accepts images$")
        expect(panel.root.locator(".rtvlm-badge-api")).to_have_text("API: ok")

        # ... and against one started without --mmproj: the clear message in the panel.
        panel.enter_text("rtvlm-base-url", text_only_llama_server.base_url)
        expect(panel.root.locator(".rtvlm-badge-api")).to_have_text(re.compile(r"API: 1 model"))
        panel.click("button.rtvlm-test-api")
        shown = panel.expect_status(r"this server cannot take images")
        assert shown.startswith("API problem: 1 model(s), text "), shown
        assert "start it with --mmproj or choose a vision model" in shown, shown
        expect(panel.root.locator(".rtvlm-badge-api")).to_have_text("API: problem")

        # The keys never reach the page: not in the DOM, not in any widget model's state, not in
        # any message the kernel sent over the websocket (ipywidgets echoes updates back) ...
        state = kernel_state(nb, 1)
        assert state["key_field"] == ""
        html = nb.page.evaluate("() => document.documentElement.outerHTML")
        widget_state = nb.page.evaluate(_WIDGET_STATE_JS, nb.panel_id)
        models = json.loads(widget_state)["state"]
        passwords = [m["state"] for m in models.values() if m["model_name"] == "PasswordModel"]
        assert passwords and all(p["value"] == "" for p in passwords), passwords
        for key in (env_key, typed_key):
            assert key not in html
            assert key not in widget_state
            leaks = [
                frame[max(0, frame.find(key.encode()) - 300) :][:400]
                for frame in received
                if key.encode() in frame
            ]
            assert received and not leaks, leaks
        assert nb.page.evaluate("() => document.querySelector('.rtvlm-api-key input').value") == ""

        # ... nor in the notebook JupyterLab saves, with widget state saving switched on.
        try:
            assert nb.page.evaluate(_SET_SAVE_STATE_JS, [_SAVE_STATE_TOGGLE, True]) is True
            assert nb.page.evaluate(_SAVE_JS, nb.panel_id) is False  # saved: not dirty
        finally:
            nb.page.evaluate(_SET_SAVE_STATE_JS, [_SAVE_STATE_TOGGLE, False])
        saved = jupyter_lab.read_notebook("controls_api.ipynb")
        widgets_meta = saved["metadata"].get("widgets", {})
        saved_state = widgets_meta.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
        assert any(m.get("model_name") == "PasswordModel" for m in saved_state.values()), list(saved_state)
        text = json.dumps(saved)
        for key in (env_key, typed_key):
            assert key not in text
    assert not nb.unexpected_errors()


# -- 5: generation controls ------------------------------------------------------------------------

READOUT_RE = re.compile(r"^(\d+\.\d) answers/s · last (\d+) ms · median of (\d+) (\d+) ms$")


def test_generation_controls_reach_the_server(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    with GatedServer("fine", gated=False) as server:
        jupyter_lab.put_notebook(
            "controls_generation.ipynb",
            [
                "from rtvlm_widget import RealtimeVLM\n"
                f"app = RealtimeVLM(base_url={server.base_url!r}, prompt='What do you see?', "
                "max_tokens=20, temperature=2.0, interval=0.1)\n"
                "app",
                PROBE_CELL,
            ],
        )
        nb.open(jupyter_lab, "controls_generation.ipynb")
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        panel.expect_models("gated", "Custom…")

        # Instruction: a multi-line prompt typed in the textarea is what the server is asked.
        prompt = panel.root.locator(".rtvlm-prompt textarea")
        prompt.click()
        prompt.press("Control+A")
        prompt.press_sequentially("Describe the scene.")
        prompt.press("Enter")
        prompt.press_sequentially("Then name the four colours.")
        prompt.blur()
        expect(prompt).to_have_value("Describe the scene.\nThen name the four colours.")
        panel.send_once()
        assert _prompt_text(server.requests[-1]) == "Describe the scene.\nThen name the four colours."
        assert server.requests[-1]["max_tokens"] == 20

    # From here on the real llama-server answers.
    panel.enter_text("rtvlm-base-url", llama_server.base_url)
    panel.expect_models("tiny-vlm", "Custom…")

    # Max tokens: the tiny model always runs to the limit, so the limit is what comes back.
    panel.set_slider("rtvlm-max-tokens", "7")
    panel.send_once()
    cells = panel.row_cells()
    assert cells[3] == "ok" and cells[4].endswith("+7"), cells
    panel.expect_status(r"^answer #\d+ in \d+ ms, 7 tokens, 16 image tokens/frame$")

    # Temperature: at 2.0 (from the constructor) answers for the same frame vary; at 0 they repeat.
    hot = []
    for _ in range(3):
        panel.send_once()
        hot.append(panel.rows.last.get_attribute("title"))
    assert len(set(hot)) > 1, hot
    panel.set_slider("rtvlm-temperature", "0")
    panel.send_once()
    first = panel.answer.input_value()
    panel.send_once()
    assert panel.answer.input_value() == first
    state = kernel_state(nb, 1)
    assert [a["temperature"] for a in state["history"][-2:]] == [0.0, 0.0]
    assert [a["completion_tokens"] for a in state["history"][-2:]] == [7, 7]
    assert state["history"][-1]["text"] == state["history"][-2]["text"] == first
    before = len(state["history"])

    # Interval: live requests start at least the interval apart (the constructor said 100 ms).
    panel.set_slider("rtvlm-interval", "1000")
    rows = panel.rows.count()
    panel.click("button.rtvlm-run")
    expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Stop"))
    panel.wait_rows_at_least(rows + 4)
    # Readouts while live: answers per second above zero, last and median latency in ms.
    readout = panel.root.locator(".rtvlm-readout")
    expect(readout).to_have_text(READOUT_RE)
    match = READOUT_RE.match(readout.inner_text())
    assert match and float(match[1]) > 0, readout.inner_text()
    panel.click("button.rtvlm-run")
    expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Start"))
    live = kernel_state(nb, 1)["history"][before:]
    assert len(live) >= 4 and all(a["error"] is None for a in live), live
    # Each request started (frame asked for) total_s before its answer was recorded.
    starts = [a["created_at"] - a["total_s"] for a in live]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.9, live
    assert not nb.unexpected_errors()


# -- 6: answer display, overlay and the request log ----------------------------------------------

HOSTILE = (
    '<img src=x onerror="window.__rtvlmPwned=1"><i class="rtvlm-injected">four</i> quadrants\nsecond line'
)


def test_answer_overlay_and_request_log(jupyter_lab: JupyterLab, notebook_page: NotebookPage) -> None:
    nb = notebook_page
    nb.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter_lab.url)
    with GatedServer(HOSTILE, gated=False) as server:
        jupyter_lab.put_notebook(
            "controls_log.ipynb",
            [
                "from rtvlm_widget import RealtimeVLM\n"
                f"app = RealtimeVLM(base_url={server.base_url!r}, interval=0.1, send_size='original')\n"
                "app",
                PROBE_CELL,
                "app._panel.log.max_rows = 3",
            ],
        )
        nb.open(jupyter_lab, "controls_log.ipynb")
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        panel.expect_models("gated", "Custom…")

        # An answer full of markup is shown as text: in the answer box, over the video, in the log.
        panel.send_once()
        expect(panel.answer).to_have_value(HOSTILE)
        overlay = panel.root.locator(".rtvlm-overlay")
        expect(overlay).to_have_text(HOSTILE)
        cells = panel.row_cells()
        assert re.fullmatch(r"\d\d:\d\d:\d\d", cells[0]), cells
        assert re.fullmatch(r"\d+ ms", cells[2]), cells
        assert cells[1:2] + cells[3:] == ["gated", "ok", "1+1", HOSTILE.split("\n")[0]], cells
        injected = nb.page.evaluate(
            "() => [document.querySelectorAll('img[src=\"x\"], .rtvlm-injected').length, window.__rtvlmPwned]"
        )
        assert injected == [0, None], injected

        # Overlay toggle hides and shows the answer over the video.
        toggle = panel.root.locator(".rtvlm-overlay-toggle input")
        toggle.click()
        expect(overlay).to_be_hidden()
        assert kernel_state(nb, 1)["overlay"] is False
        toggle.click()
        expect(overlay).to_be_visible()
        expect(overlay).to_have_text(HOSTILE)

        # Copy answer: the whole latest answer; Copy log: a TSV of the table.
        panel.click("button.rtvlm-copy-answer")
        expect(panel.root.locator(".rtvlm-copied")).to_have_text("copied answer")
        assert nb.page.evaluate("() => navigator.clipboard.readText()") == HOSTILE
        server.answer_text = "plain answer"
        panel.send_once()
        panel.click("button.rtvlm-copy-log")
        expect(panel.root.locator(".rtvlm-copied")).to_have_text("copied log")
        tsv = nb.page.evaluate("() => navigator.clipboard.readText()").split("\n")
        assert tsv[0].split("\t") == ["time", "model", "latency", "status", "tokens", "answer"]
        table = [line.split("\t") for line in tsv[1:]]
        assert [row[5] for row in table] == [" ".join(HOSTILE.split()), "plain answer"], tsv
        assert all(len(row) == 6 and row[1] == "gated" and row[3] == "ok" for row in table), tsv

        # Autoscroll: on, the newest row is in view; off, the table stays where the user left it.
        autoscroll = panel.root.locator(".rtvlm-autoscroll")
        body = panel.root.locator(".rtvlm-log-body")
        expect(autoscroll).to_be_checked()
        panel.click("button.rtvlm-run")
        panel.wait_rows_at_least(16)
        panel.click("button.rtvlm-run")
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Start"))
        at_bottom = "(el) => el.scrollTop > 0 && el.scrollTop + el.clientHeight >= el.scrollHeight - 2"
        nb.page.wait_for_function(at_bottom, arg=body.element_handle(), timeout=UI_TIMEOUT_MS)
        autoscroll.click()
        expect(autoscroll).not_to_be_checked()
        assert kernel_state(nb, 1)["autoscroll"] is False
        body.evaluate("(el) => { el.scrollTop = 0; }")
        panel.send_once()
        assert body.evaluate("(el) => el.scrollTop") == 0
        autoscroll.click()
        assert kernel_state(nb, 1)["autoscroll"] is True
        panel.send_once()
        nb.page.wait_for_function(at_bottom, arg=body.element_handle(), timeout=UI_TIMEOUT_MS)

        # The log is bounded: with max_rows = 3 at most three rows stay, in the page and the kernel.
        assert nb.run_cell(2), nb.cell_text(2)
        server.answer_text = "after the bound"
        count = panel.rows.count()
        panel.click("button.rtvlm-send-once")
        expect(panel.rows).to_have_count(3, timeout=UI_TIMEOUT_MS)
        assert count > 3
        expect(panel.rows.last).to_have_attribute("title", "after the bound")
        for _ in range(2):
            server.answer_text = f"bounded {_}"
            panel.click("button.rtvlm-send-once")
            expect(panel.rows.last).to_have_attribute("title", f"bounded {_}", timeout=UI_TIMEOUT_MS)
            expect(panel.rows).to_have_count(3)
        state = kernel_state(nb, 1)
        assert state["log_rows"] == 3
        answered = len(state["history"])
        # Every answer is in the history; at most one request was cut short by Stop (no record).
        sent = len(server.image_requests)
        assert sent - 1 <= answered <= sent, (answered, sent)

        # Clear empties the log and the answer box; the session's history keeps everything.
        panel.click("button.rtvlm-clear")
        expect(panel.rows).to_have_count(0)
        expect(panel.answer).to_have_value("")
        state = kernel_state(nb, 1)
        assert len(state["history"]) == answered and state["log_rows"] == 0
    assert not nb.unexpected_errors()


# -- 7: Notebook 7 --------------------------------------------------------------------------------


def test_send_once_and_test_api_in_notebook7(
    jupyter_notebook: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    jupyter_notebook.put_notebook(
        "controls7.ipynb",
        [
            "from rtvlm_widget import RealtimeVLM\n"
            f"app = RealtimeVLM(base_url={llama_server.base_url + '/v1'!r}, max_tokens=5)\n"
            "app"
        ],
    )
    nb.open(jupyter_notebook, "controls7.ipynb")
    assert nb.run_cell(0), nb.cell_text(0)
    panel = PanelDriver(nb)
    panel.wait_camera_live()
    panel.expect_models("tiny-vlm", "Custom…")
    panel.send_once()
    cells = panel.row_cells()
    assert cells[1] == "tiny-vlm" and cells[3] == "ok" and cells[4].endswith("+5"), cells
    assert panel.answer.input_value().strip()
    panel.click("button.rtvlm-test-api")
    panel.expect_status(r"^API ok: 1 model\(s\), text \d+ ms, image \d+ ms, accepts images$")
    assert not nb.unexpected_errors()
