"""The full panel in JupyterLab's light and dark themes, after two answers (the README's pictures)."""

from __future__ import annotations

from pathlib import Path

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def test_panel_in_light_and_dark_theme(
    jupyter_lab: JupyterLab,
    notebook_page: NotebookPage,
    llama_server: LlamaServer,
    artifacts_dir: Path,
) -> None:
    page = notebook_page.page
    page.set_viewport_size({"width": 1100, "height": 1900})
    jupyter_lab.put_notebook(
        "themes.ipynb",
        [
            "from rtvlm_widget import RealtimeVLM\n"
            f"app = RealtimeVLM(base_url={llama_server.base_url!r}, prompt='Describe the scene.', "
            "max_tokens=12)\n"
            "app"
        ],
    )
    panel = notebook_page.show_panel(jupyter_lab, "themes.ipynb")
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
