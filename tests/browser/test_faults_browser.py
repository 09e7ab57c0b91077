"""Faults seen from the real page: malformed messages reaching the kernel, server faults while live,
a page reload and a kernel restart. JupyterLab + headless Chromium + ``FaultyServer``.

Malformed messages are crafted in the page and sent through the view's own widget model (found
through JupyterLab's widget manager), exactly the path a buggy or hostile front end would use.
Camera faults (denied, none, a track ending mid-session, starting again) are covered in
``test_controls_camera.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.jupyter import JupyterLab
from tests.browser.page import WIDGET_MANAGER_JS, NotebookPage
from tests.browser.test_controls_api import _SAVE_JS, UI_TIMEOUT_MS, PanelDriver, wait_until
from tests.servers.faulty import CutStream, FaultyServer, Raw, Reply, Status

# The view's widget model, found through the widget manager that rendered the notebook's outputs.
_FIND_MODEL_JS = (
    "async ([panelId, modelId]) => {"
    + WIDGET_MANAGER_JS
    + """
  const manager = await findWidgetManager(panelId);
  window.__rtvlmModel = await manager.get_model(modelId);
  return window.__rtvlmModel.get('_esm') ? 'anywidget' : 'other';
}"""
)

# Every kind of malformed message the kernel must drop (and count), sent as the view would send.
_MALFORMED_JS = """() => {
  const model = window.__rtvlmModel;
  const send = (content, buffers) => model.send(content, undefined, buffers || []);
  const jpegStart = (n) => { const b = new Uint8Array(n); b.set([0xff, 0xd8, 0xff]); return b; };
  const frame = {kind: 'frame', seq: 990, width: 4, height: 4, mime: 'image/jpeg'};
  send({kind: 'no-such-kind', seq: 1});                                   // unknown kind
  send(frame);                                                            // missing buffer
  send(frame, [new TextEncoder().encode('this is not a JPEG')]);          // bytes that are not JPEG
  send(frame, [jpegStart(9 * 1024 * 1024)]);                              // over the 8 MiB frame limit
  send(frame, [jpegStart(16), jpegStart(16)]);                            // two buffers
  send({...frame, seq: -4}, [jpegStart(16)]);                             // a negative seq
  send({...frame, width: 'wide'}, [jpegStart(16)]);                       // a size that is not a number
  send({kind: 'shown', seq: 3, shown_at_ms: 'soon'});                     // a bad acknowledgement
  send('not an object');                                                  // not even an object
  return 9;
}"""

# 50 MB in one message: more than the Jupyter server's websocket takes (tornado's 10 MiB).
_HUGE_JS = """() => {
  const model = window.__rtvlmModel;
  const b = new Uint8Array(50 * 1024 * 1024); b.set([0xff, 0xd8, 0xff]);
  model.send({kind: 'frame', seq: 991, width: 4, height: 4}, undefined, [b]);
}"""

_KERNEL_STATUS_JS = """(panelId) => {
  const panel = [...window.jupyterapp.shell.widgets('main')].find((w) => w.id === panelId);
  const kernel = panel.sessionContext.session.kernel;
  return [kernel.connectionStatus, kernel.status];
}"""

STATE_CELL = (
    "import json\n"
    "print('STATE ' + json.dumps({'dropped': app.view.dropped_messages, 'live': app._controller.live,\n"
    "    'history': [[a.seq, a.error] for a in app.history], 'model_id': app.view.model_id}))"
)


def state(nb: NotebookPage) -> dict[str, Any]:
    out = nb.run_code(STATE_CELL)
    line = next(x for x in out.splitlines() if x.startswith("STATE "))
    result: dict[str, Any] = json.loads(line.removeprefix("STATE "))
    return result


def app_cell(url: str, **settings: object) -> str:
    args = "".join(f", {name}={value!r}" for name, value in settings.items())
    return (
        "from rtvlm_widget import RealtimeVLM\n"
        f"app = RealtimeVLM(base_url={url!r}, model='faulty', send_size='original', max_tokens=8{args})\n"
        "app"
    )


def test_malformed_messages_are_dropped_and_server_faults_while_live_are_shown(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage
) -> None:
    nb = notebook_page
    with FaultyServer() as server:
        jupyter_lab.put_notebook("faults.ipynb", [app_cell(server.base_url, interval=0.1)])
        nb.open(jupyter_lab, "faults.ipynb")
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        panel.send_once()
        assert nb.page.evaluate(_FIND_MODEL_JS, [nb.panel_id, state(nb)["model_id"]]) == "anywidget"

        # Malformed messages: each dropped and counted; the kernel and the session carry on.
        sent = nb.page.evaluate(_MALFORMED_JS)
        wait_until(lambda: state(nb)["dropped"] == sent, f"{sent} dropped messages")
        panel.send_once()
        after = state(nb)
        assert [error for _, error in after["history"]] == [None, None]
        # 50 MB: the Jupyter server refuses it before the kernel (its websocket limit) and closes
        # the connection; JupyterLab reconnects by itself, and the same session goes on.
        nb.page.evaluate(_HUGE_JS)
        wait_until(
            lambda: nb.page.evaluate(_KERNEL_STATUS_JS, nb.panel_id) == ["connected", "idle"],
            "the kernel connection back",
        )
        panel.send_once()
        after = state(nb)
        assert after["dropped"] == sent and len(after["history"]) == 3, after
        assert all(error is None for _, error in after["history"]), after

        # Server faults while live: each failure's message in the status line and the log, the
        # loop backing off (a Retry-After honoured) and answering again by itself.
        server.then(
            Status(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}),
            Status(500, {"error": {"message": "boom"}}),
            CutStream(("half an ",)),
            Raw(b"<html>proxy error</html>", "text/html"),
        )
        rows = panel.rows.count()
        chat_before = len(server.chat_requests)
        panel.click("button.rtvlm-run")
        url = f"{server.base_url}/v1/chat/completions"
        expected = [
            f"error: {url} answered 429 Too Many Requests: slow down; the server asks to wait 1 s",
            f"error: {url} answered 500 Internal Server Error: boom; the server failed",
            f"error: {url} broke off the answer stream after 8 characters (",
            f"error: {url} answered 200 with a body that is not JSON (text/html, ",
        ]
        panel.wait_rows_at_least(rows + len(expected) + 3)
        statuses = [panel.row_cells(rows + i)[3] for i in range(len(expected) + 3)]
        assert [s[: len(e)] for s, e in zip(statuses, expected, strict=False)] == expected, statuses
        assert statuses[len(expected) :] == ["ok"] * 3, statuses
        expect(panel.status).to_have_text(re.compile(r"^answer #\d+"), timeout=UI_TIMEOUT_MS)
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Stop"))
        # The cut stream made the API badge say unreachable; the next answer brought it back.
        expect(panel.root.locator(".rtvlm-badge-api")).to_have_text("API: 1 model(s)", timeout=UI_TIMEOUT_MS)
        arrivals = [r.at for r in server.chat_requests[chat_before:]]
        assert arrivals[1] - arrivals[0] >= 1.0  # the Retry-After
        panel.click("button.rtvlm-run")
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Start"))
    assert not nb.unexpected_errors()


_RESTART_JS = """async (panelId) => {
  const panel = [...window.jupyterapp.shell.widgets('main')].find((w) => w.id === panelId);
  await panel.sessionContext.restartKernel();
}"""


def test_reload_and_kernel_restart_leave_a_consistent_widget(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage
) -> None:
    nb = notebook_page
    with FaultyServer(default=Reply(delay_s=0.05)) as server:
        jupyter_lab.put_notebook("reload.ipynb", [app_cell(server.base_url, interval=0.2)])
        nb.open(jupyter_lab, "reload.ipynb")
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        panel.click("button.rtvlm-run")
        panel.wait_rows_at_least(3)

        # Reload while live (saved first, as JupyterLab's autosave does: an unsaved output is gone
        # after a reload): the panel comes back from the kernel's state (Stop shown, the log
        # replayed) and the live loop, which never stopped, answers about the new page's frames.
        assert nb.page.evaluate(_SAVE_JS, nb.panel_id) is False
        before = len(state(nb)["history"])
        nb.page.reload()
        nb.wait_open()
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Stop"))
        panel.wait_rows_at_least(3)  # the log replays after the view: wait for it, do not count at once
        wait_until(
            lambda: sum(e is None for _, e in state(nb)["history"][before:]) >= 3, "answers after the reload"
        )
        expect(panel.status).to_have_text(re.compile(r"^answer #\d+"), timeout=UI_TIMEOUT_MS)
        assert nb.page.locator(".rtvlm-panel").count() == 1

        # Kernel restart: the old loop dies with the kernel (the server hears nothing more from
        # it); running the cell again gives one working panel with a fresh history.
        nb.page.evaluate(_RESTART_JS, nb.panel_id)
        nb.wait_open()
        quiet = len(server.chat_requests)
        nb.page.wait_for_timeout(1000)
        assert len(server.chat_requests) == quiet
        assert nb.run_cell(0), nb.cell_text(0)
        panel = PanelDriver(nb)
        panel.wait_camera_live()
        expect(panel.root.locator("button.rtvlm-run")).to_have_text(re.compile("Start"))
        panel.send_once()
        fresh = state(nb)
        assert len(fresh["history"]) == 1 and fresh["history"][0][1] is None and not fresh["live"]
        assert nb.page.locator(".rtvlm-panel").count() == 1
    assert not nb.unexpected_errors()
