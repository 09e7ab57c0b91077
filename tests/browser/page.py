"""Headless Chromium with a fake camera, and a notebook page driven through the app.

Cells are run through the front end's own command registry (`window.jupyterapp`, exposed
by the server flag `expose_app_in_browser`) rather than key presses: a keypress sent
before the notebook has focus is silently lost, a command is not. Completion is taken
from the promise the command returns (it settles when the kernel's execute_reply came
back), not from the DOM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from playwright.sync_api import Browser, BrowserType, ConsoleMessage, Error, Locator, Page, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .jupyter import _notebook_path

CHROMIUM_PATH = Path("/usr/bin/chromium")


class NotebookServer(Protocol):
    """What a page needs of a server: `JupyterLab`, or the project's demo launcher."""

    def notebook_url(self, name: str) -> str: ...

    def log_tail(self, lines: int = ...) -> str: ...


# Page errors seen with the stock front ends and no extension of ours loaded, so a test
# asserting "no errors" must not count them. Notebook 7.6.5 throws this one from its
# settings loader on every page load (with or without our settings overrides).
BENIGN_ERRORS: tuple[str, ...] = ("Cannot read properties of undefined (reading 'schema')",)

# Quiet, offline, reproducible Chromium. Playwright itself adds --headless, --no-sandbox
# (we run as root) and a fresh temporary user-data dir per launch.
_BASE_ARGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # otherwise it keeps trying to reach the internet
    "--disable-component-update",
    "--disable-sync",
)


def launch_chromium(
    playwright: Playwright | BrowserType,
    y4m: Path | None,
    *,
    extra_args: Sequence[str] = (),
    headless: bool = True,
    auto_allow: bool = True,
    fake_devices: int | None = None,
) -> Browser:
    """Launch Debian's Chromium; with ``y4m``, getUserMedia gets that file as the camera.

    With ``y4m=None`` the fake device is Chromium's built-in 640x480 test pattern. The
    permission prompt is auto-accepted (``--use-fake-ui-for-media-stream``); pass
    ``extra_args`` to add or test other behaviour.

    ``playwright`` may also be a `BrowserType` (``browser.browser_type``): one sync
    Playwright runs per process, so a second browser must come from the first one's.
    ``auto_allow=False`` leaves the prompt out: a context created with
    ``permissions=["camera"]`` gets the camera, one without gets NotAllowedError at once
    (headless cannot ask), and ``context.clear_permissions()`` ends running camera tracks.
    ``fake_devices=N`` (only with ``y4m=None``: a file is always exactly one camera) offers
    N built-in cameras, labelled ``fake_device_0``…; ``fake_device_0`` shows a green
    pattern, ``fake_device_1`` a dark grey one; 0 means "no camera" (NotFoundError).
    """
    if not CHROMIUM_PATH.exists():
        raise RuntimeError(
            f"{CHROMIUM_PATH} not found: browser tests need Debian's Chromium "
            "(apt-get install chromium); `playwright install` is not used here"
        )
    if fake_devices is not None and (y4m is not None or fake_devices < 0):
        raise ValueError("fake_devices needs y4m=None and a count >= 0")
    args = list(_BASE_ARGS)
    if auto_allow:
        args.append("--use-fake-ui-for-media-stream")
    fake = "--use-fake-device-for-media-stream"
    args.append(fake if fake_devices is None else f"{fake}=device-count={fake_devices}")
    if y4m is not None:
        if not y4m.is_file():
            raise RuntimeError(f"fake camera file {y4m} does not exist")
        args.append(f"--use-file-for-fake-video-capture={y4m}")
    args += list(extra_args)
    browser_type = playwright.chromium if isinstance(playwright, Playwright) else playwright
    try:
        return browser_type.launch(executable_path=str(CHROMIUM_PATH), headless=headless, args=args)
    except Error as exc:
        raise RuntimeError(f"could not launch {CHROMIUM_PATH}: {exc}") from exc


# Returns the notebook panel's DOM id once the document at `path` is the current widget,
# its kernel is connected and idle. Lab and Notebook 7 shells both have `currentWidget`.
_READY_JS = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  if (!w || !w.context || !w.sessionContext || !w.content) return null;
  if (w.context.path !== path || !w.context.isReady || !w.sessionContext.isReady) return null;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.connectionStatus !== 'connected' || k.status !== 'idle') return null;
  if (!w.content.widgets || w.content.widgets.length === 0) return null;
  return w.id;
}"""

# Looks the panel up by id (not "current widget") so a dialog or another tab taking
# focus does not send the command to the wrong notebook.
_PANEL_JS = """
const panelById = (id) => {
  const app = window.jupyterapp;
  for (const w of app.shell.widgets('main')) { if (w.id === id) return w; }
  const w = app.shell.currentWidget;
  if (w && w.id === id) return w;
  throw new Error('notebook panel ' + id + ' is gone');
};
"""

_RUN_JS = (
    """async ([id, index]) => {"""
    + _PANEL_JS
    + """
  const app = window.jupyterapp;
  const panel = panelById(id);
  const nb = panel.content;
  if (index < 0 || index >= nb.widgets.length) throw new Error('no cell ' + index);
  app.shell.activateById(id);
  nb.deselectAll();
  nb.activeCellIndex = index;
  nb.mode = 'command';
  const runs = (window.__rtvlmRuns = window.__rtvlmRuns || {});
  const key = id + ':' + index;
  const before = nb.widgets[index].model.executionCount;
  const run = { done: false, ok: null, error: null, before };
  runs[key] = run;
  // Not awaited: a cell may run for long (it can wait for the widget) and the caller
  // decides whether to wait. `notebook:run-cell` runs the selected cell, no advancing.
  // `semanticWidget` names the target panel (Lab/Notebook 7 getCurrent() honours it), so
  // the command cannot hit another notebook while focus is still moving.
  app.commands.execute('notebook:run-cell', { activate: false, semanticWidget: id }).then(
    (ok) => { run.ok = ok; run.done = true; },
    (err) => { run.error = String(err); run.done = true; },
  );
  return key;
}"""
)

# [done, ok, error, execution count, count before] of the last run of a cell.
_RUN_STATE_JS = (
    """([id, index]) => {"""
    + _PANEL_JS
    + """
  const run = (window.__rtvlmRuns || {})[id + ':' + index];
  const cell = panelById(id).content.widgets[index];
  const count = cell ? cell.model.executionCount : null;
  if (!run) return [false, null, 'never started', count, null];
  return [run.done, run.ok, run.error, count, run.before];
}"""
)

_OUTPUTS_JS = (
    """([id, index]) => {"""
    + _PANEL_JS
    + """
  const cell = panelById(id).content.widgets[index];
  if (!cell) throw new Error('no cell ' + index);
  return cell.model.outputs ? cell.model.outputs.toJSON() : [];
}"""
)


_SHUTDOWN_JS = (
    """(id) => {"""
    + _PANEL_JS
    + """
  const sc = panelById(id).sessionContext;
  window.__rtvlmShutdown = window.__rtvlmShutdown || {};
  window.__rtvlmShutdown[id] = false;
  sc.shutdown().finally(() => { window.__rtvlmShutdown[id] = true; });
}"""
)

_SHUTDOWN_DONE_JS = "(id) => (window.__rtvlmShutdown || {})[id] === true"

# Runs code in the notebook's kernel outside any cell (nothing is shown or saved) and
# returns [status, stdout, error text].
_EXECUTE_JS = (
    """async ([id, code, ms]) => {"""
    + _PANEL_JS
    + """
  const kernel = panelById(id).sessionContext.session.kernel;
  const future = kernel.requestExecute({ code, silent: false, store_history: false });
  let out = '';
  let error = '';
  future.onIOPub = (msg) => {
    const type = msg.header.msg_type;
    if (type === 'stream') out += msg.content.text;
    else if (type === 'error') error = msg.content.ename + ': ' + msg.content.evalue;
  };
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no execute_reply after ' + ms + ' ms')), ms);
  });
  try {
    const reply = await Promise.race([future.done, late]);
    return [reply.content.status, out, error];
  } finally {
    clearTimeout(timer);
  }
}"""
)


#: JS function ``findWidgetManager(panelId)``: the widget manager that renders a notebook's outputs
#: (it is not on ``window``; the widget renderers under the notebook panel hold it).
WIDGET_MANAGER_JS = """async function findWidgetManager(panelId) {
  const panel = [...window.jupyterapp.shell.widgets('main')].find((w) => w.id === panelId);
  const seen = new Set();
  const find = (w) => {
    if (!w || seen.has(w)) return null;
    seen.add(w);
    if (w._manager && w._manager.promise) return w;
    for (const child of w.widgets || []) { const hit = find(child); if (hit) return hit; }
    for (const cell of (w.content && w.content.widgets) || []) {
      const hit = find(cell.outputArea); if (hit) return hit;
    }
    return null;
  };
  const renderer = find(panel);
  if (!renderer) throw new Error('no widget renderer under ' + panelId);
  return await renderer._manager.promise;
}"""


class NotebookPage:
    """A Playwright page showing one notebook of a `JupyterLab` server.

    Console errors and page errors are recorded from construction on; see
    `collect_console`.
    """

    def __init__(self, page: Page) -> None:
        self.page = page
        self.panel_id: str | None = None
        self._opening: str | None = None  # path of the notebook the last open() navigated to
        self.lab: NotebookServer | None = None  # the server of the last open(), for reports
        self.console_messages: list[str] = []  # every console message, "type: text"
        self._errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self._errors.append(f"pageerror: {exc}"))
        page.on("crash", lambda _page: self._errors.append("crash: the page crashed"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        line = f"{msg.type}: {msg.text}"
        self.console_messages.append(line)
        if msg.type == "error":
            loc = msg.location
            where = f" ({loc['url']}:{loc.get('lineNumber', '')})" if loc.get("url") else ""
            self._errors.append(f"console.error: {msg.text}{where}")

    def collect_console(self) -> list[str]:
        """The live list of console errors and page errors so far (for failure reports)."""
        return self._errors

    def unexpected_errors(self) -> list[str]:
        """`collect_console` without the errors the stock front ends always produce."""
        return [e for e in self._errors if not any(b in e for b in BENIGN_ERRORS)]

    def open(self, lab: NotebookServer, name: str, timeout: float = 60.0, *, wait: bool = True) -> None:
        """Navigate to notebook ``name`` and wait until its kernel is connected and idle.

        With ``wait=False`` returns once the page started loading; call `wait_open` later
        (several pages, each in its own context, then load and start kernels at once).
        """
        self.lab = lab
        self._opening = _notebook_path(name)
        # Without waiting, return as soon as the navigation is under way.
        until: Literal["domcontentloaded", "commit"] = "domcontentloaded" if wait else "commit"
        self.page.goto(lab.notebook_url(name), wait_until=until, timeout=timeout * 1000)
        if wait:
            self.wait_open(timeout)

    def wait_open(self, timeout: float = 60.0) -> None:
        """Wait until the notebook of the last `open` is shown with a connected, idle kernel."""
        path = self._opening
        if path is None:
            raise RuntimeError("call open() first")
        ms = timeout * 1000
        try:
            handle = self.page.wait_for_function(_READY_JS, arg=path, timeout=ms, polling=100)
        except PlaywrightTimeoutError as exc:
            raise TimeoutError(
                f"notebook {path} not open with an idle kernel after {timeout:.0f} s\n" + self._report()
            ) from exc
        panel_id = handle.json_value()
        if not isinstance(panel_id, str):
            raise RuntimeError(f"unexpected panel id {panel_id!r}")
        self.panel_id = panel_id

    def shutdown_kernel(self, timeout: float = 10.0) -> None:
        """Shut the notebook's kernel down (a session-wide server would collect them)."""
        if self.panel_id is None or self.page.is_closed():
            return
        self.page.evaluate(_SHUTDOWN_JS, self.panel_id)
        self.page.wait_for_function(_SHUTDOWN_DONE_JS, arg=self.panel_id, timeout=timeout * 1000, polling=100)

    def _panel(self) -> str:
        if self.panel_id is None:
            raise RuntimeError("call open() first")
        return self.panel_id

    def run_cell(self, index: int, timeout: float = 60.0, *, wait: bool = True) -> bool:
        """Execute cell ``index``; with ``wait`` block until its execute_reply arrived.

        Returns True when the cell ran without error (False: the kernel reported an
        exception; the traceback is in `cell_outputs`). With ``wait=False`` returns True
        at once; call `wait_cell` later.
        """
        self.page.evaluate(_RUN_JS, [self._panel(), index])
        if not wait:
            return True
        return self.wait_cell(index, timeout)

    def wait_cell(self, index: int, timeout: float = 60.0) -> bool:
        """Wait for the last `run_cell` of ``index`` to finish; True if it had no error."""
        deadline = time.monotonic() + timeout
        retried = False
        while True:
            done, ok, error, count, before = self._run_state(index)
            if done:
                if error is not None:
                    raise RuntimeError(f"running cell {index} failed in the page: {error}\n" + self._report())
                if count is None and not retried:
                    # The command resolved without executing (e.g. the session was not
                    # ready after all): once more, then report.
                    retried = True
                    self.page.evaluate(_RUN_JS, [self._panel(), index])
                    continue
                if count is None:
                    raise RuntimeError(
                        f"cell {index} was not executed (count stays empty)\n" + self._report()
                    )
                return bool(ok)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"cell {index} still running after {timeout:.0f} s "
                    f"(count {count}, before {before})\n" + self._report()
                )
            time.sleep(0.05)

    def _run_state(self, index: int) -> tuple[bool, Any, Any, Any, Any]:
        state: list[Any] = self.page.evaluate(_RUN_STATE_JS, [self._panel(), index])
        return (bool(state[0]), state[1], state[2], state[3], state[4])

    def run_code(self, code: str, timeout: float = 30.0) -> str:
        """Run ``code`` in the notebook's kernel outside any cell; returns what it printed.

        For reading kernel state in a test (nothing appears in the notebook). Raises
        RuntimeError with the exception when the code fails.
        """
        status, out, error = self.page.evaluate(_EXECUTE_JS, [self._panel(), code, timeout * 1000])
        if status != "ok":
            raise RuntimeError(f"kernel code failed ({status}): {error}\n--- code ---\n{code}")
        return str(out)

    def tagged(self, index: int, tag: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for cell ``index`` (started with ``run_cell``) and return the JSON it printed on a
        line starting with ``tag`` and a space; fails with the cell's output otherwise."""
        ok = self.wait_cell(index, timeout)
        text = self.cell_text(index)
        assert ok, text
        line = next((x for x in text.splitlines() if x.startswith(tag + " ")), None)
        assert line is not None, f"no {tag!r} line in cell {index}:\n{text}"
        result: dict[str, Any] = json.loads(line.removeprefix(tag + " "))
        return result

    def cell_outputs(self, index: int) -> list[dict[str, Any]]:
        """The outputs of cell ``index`` as nbformat JSON, read from the front end's model."""
        outputs: list[dict[str, Any]] = self.page.evaluate(_OUTPUTS_JS, [self._panel(), index])
        return outputs

    def cell_text(self, index: int) -> str:
        """Concatenated stream text and text/plain results of cell ``index``."""
        parts: list[str] = []
        for out in self.cell_outputs(index):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                parts.append(text if isinstance(text, str) else "".join(text))
            elif out.get("output_type") in ("execute_result", "display_data"):
                plain = out.get("data", {}).get("text/plain", "")
                parts.append((plain if isinstance(plain, str) else "".join(plain)) + "\n")
            elif out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])) + "\n")
        return "".join(parts)

    def cell(self, index: int) -> Locator:
        """The DOM node of cell ``index`` in this notebook."""
        return self.page.locator(f"[id='{self._panel()}'] .jp-Notebook .jp-Cell").nth(index)

    def cell_output(self, index: int) -> Locator:
        """The output area of cell ``index`` (where widgets render)."""
        return self.cell(index).locator(".jp-Cell-outputArea")

    def show_panel(self, lab: NotebookServer, name: str, timeout: float = 30.0) -> Locator:
        """Open notebook ``name``, run its first cell (which displays a RealtimeVLM) and return the
        panel once its camera is live."""
        self.open(lab, name)
        assert self.run_cell(0), self.cell_text(0)
        panel = self.cell_output(0).locator(".rtvlm-panel")
        panel.locator(".rtvlm-badge[data-state='live']").wait_for(timeout=timeout * 1000)
        return panel

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)

    def _report(self) -> str:
        errors = "\n".join(self._errors[-30:]) or "(none)"
        report = f"page: {self.page.url}\nconsole/page errors:\n{errors}"
        if self.lab is not None:
            report += "\n" + self.lab.log_tail(30)
        return report
