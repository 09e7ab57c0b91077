"""Small ipywidgets pieces the panel is built from: theme-coloured badges and a safe key box."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import traitlets

__all__ = ["Badge", "KeyBox", "classed"]

_BADGE_COLORS = {
    "ok": "var(--jp-success-color1, #2e7d32)",
    "busy": "var(--jp-warn-color1, #ef6c00)",
    "error": "var(--jp-error-color1, #c62828)",
    "idle": "var(--jp-layout-color3, #9e9e9e)",
}


class Badge:
    """A small coloured label; ``tone`` picks the colour from the JupyterLab theme."""

    def __init__(self, name: str, text: str) -> None:
        self.widget = widgets.Label(value=text)
        self.widget.add_class("rtvlm-badge-" + name)
        self.set(text, "idle")

    def set(self, text: str, tone: str) -> None:
        self.widget.value = text
        self.widget.style.background = _BADGE_COLORS[tone]
        self.widget.style.text_color = "white"
        self.tone = tone


class KeyBox(widgets.Password):  # type: ignore[misc]  # ipywidgets has no type hints
    """A password box whose typed value is not echoed back to the page.

    ipywidgets 8 answers every update from the page with an ``echo_update`` carrying the same
    value: for the key box that would send the key back over the kernel's websocket.
    """

    value = traitlets.Unicode(help="String value").tag(sync=True, echo_update=False)


def classed(widget: widgets.Widget, name: str) -> Any:
    """``widget`` with the CSS class ``name`` (tests and styles find controls by it)."""
    widget.add_class(name)
    return widget
