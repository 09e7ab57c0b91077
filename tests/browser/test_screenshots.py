"""The full panel in JupyterLab's light and dark themes, after two answers (the README's pictures)."""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.sync_api import Locator

from tests.browser.apng import animate
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def _show(lab: JupyterLab, page: NotebookPage, server: LlamaServer, name: str, args: str) -> Locator:
    """A notebook whose one cell shows a panel on ``server`` (with ``args``), opened and live."""
    cell = (
        "from rtvlm_widget import RealtimeVLM\n"
        f"app = RealtimeVLM(base_url={server.base_url!r}, prompt='Describe the scene.', {args})\napp"
    )
    lab.put_notebook(name, [cell])
    return page.show_panel(lab, name)


def test_panel_in_light_and_dark_theme(
    jupyter_lab: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
    artifacts_dir: Path,
) -> None:
    page = notebook_page.page
    page.set_viewport_size({"width": 1100, "height": 1900})
    panel = _show(jupyter_lab, notebook_page, llama_server, "themes.ipynb", "max_tokens=12")
    panel.locator(".rtvlm-model select").filter(has_text="tiny-vlm").wait_for(timeout=20_000)
    for count in (1, 2):
        panel.locator("button.rtvlm-send-once").click()
        panel.locator(".rtvlm-log tbody tr").nth(count - 1).wait_for(timeout=20_000)

    # The latency plot has a bar per answer and says p50/p95 of the recent ones.
    label = panel.locator(".rtvlm-plot-label")
    label.filter(has_text="n=2").wait_for(timeout=20_000)
    assert "p50" in label.inner_text() and "p95" in label.inner_text()
    backgrounds = {}
    for name, theme in THEMES.items():
        page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
        page.wait_for_function("(t) => document.body.dataset.jpThemeName === t", arg=theme, timeout=20_000)
        page.wait_for_timeout(500)  # let the theme's stylesheet apply before the picture
        backgrounds[name] = panel.locator(".rtvlm-log").evaluate("(el) => getComputedStyle(el).color")
        panel.screenshot(path=str(artifacts_dir / f"panel-{name}.png"))
    # The panel follows the theme (its text colour comes from --jp-* variables).
    assert backgrounds["light"] != backgrounds["dark"]


def test_live_mode_animation(
    jupyter_lab: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
    artifacts_dir: Path,
) -> None:
    """A few seconds of live mode as an animated PNG (the README's animation)."""
    page = notebook_page.page
    page.set_viewport_size({"width": 1100, "height": 1200})
    panel = _show(jupyter_lab, notebook_page, llama_server, "animation.ipynb", "max_tokens=10, interval=0.3")
    panel.locator("button.rtvlm-run").click()
    panel.locator(".rtvlm-log tbody tr").first.wait_for(timeout=20_000)
    # The camera view, the run bar and the answer: the part of the panel that moves.
    top = page.evaluate(
        """(panel) => {
          const box = (el) => el.getBoundingClientRect();
          const p = box(panel), a = box(panel.querySelector('.rtvlm-answer'));
          return {x: p.x, y: p.y, width: p.width, height: a.bottom - p.y};
        }""",
        panel.element_handle(),
    )
    frames = []
    for _ in range(16):
        frames.append(page.screenshot(clip=top))
        page.wait_for_timeout(250)
    panel.locator("button.rtvlm-run").click()
    animation = animate(frames, delay_ms=250)
    (artifacts_dir / "panel-live.png").write_bytes(animation)
    # The answers changed while it was recorded, and Chromium plays the file as an image.
    assert len(set(frames)) >= 3
    size = page.evaluate(
        """async (b64) => {
          const img = new Image();
          img.src = 'data:image/png;base64,' + b64;
          await img.decode();
          return [img.naturalWidth, img.naturalHeight];
        }""",
        base64.b64encode(animation).decode(),
    )
    assert abs(size[0] - top["width"]) <= 1 and abs(size[1] - top["height"]) <= 1, (size, top)
