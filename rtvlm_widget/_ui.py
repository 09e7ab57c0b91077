"""Small ipywidgets pieces the panel is built from: theme-coloured badges and a safe key box."""

from __future__ import annotations

import logging
from typing import Any

import ipywidgets as widgets
import traitlets
from traitlets.log import get_logger

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _KEY_FILTER.watch(self.model_id)


class _KeyMessageFilter(logging.Filter):
    """Keeps a typed key out of debug logs: the ``comm`` package logs every incoming comm message
    (the key box's too) at DEBUG, which a plain ``logging.basicConfig(level=DEBUG)`` writes out,
    and so does the kernel's own logger at DEBUG (``--debug``); records that mention a key box's
    comm lose their arguments."""

    def __init__(self) -> None:
        super().__init__()
        self._comms: set[str] = set()
        self._installed = False

    def watch(self, comm_id: str) -> None:
        self._comms.add(comm_id)
        if not self._installed:
            self._installed = True
            kernel_log = get_logger()  # inside a kernel: the kernel app's logger
            if isinstance(kernel_log, logging.LoggerAdapter):
                kernel_log = kernel_log.logger
            for logger in (logging.getLogger("Comm"), kernel_log):
                logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        # Called for every message the kernel receives (dozens per live frame): look the comm
        # id up in the message rather than printing the whole message to search it.
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        if self._comms and any(self._mentions_key(arg) for arg in args):
            record.msg, record.args = "%s (a message of the API key box; not logged)", (record.msg,)
        return True

    def _mentions_key(self, arg: object) -> bool:
        if arg is None or isinstance(arg, (int, float)):
            return False
        if isinstance(arg, str):
            return any(comm in arg for comm in self._comms)
        if isinstance(arg, dict):
            content = arg.get("content")
            if isinstance(content, dict) and content.get("comm_id") in self._comms:
                return True
            if arg.get("comm_id") in self._comms:
                return True
            if isinstance(content, dict) or "header" in arg:
                return False  # a message of another comm, or none
        text = str(arg)  # anything else: rare, searched as text
        return any(comm in text for comm in self._comms)


_KEY_FILTER = _KeyMessageFilter()


def classed(widget: widgets.Widget, name: str) -> Any:
    """``widget`` with the CSS class ``name`` (tests and styles find controls by it)."""
    widget.add_class(name)
    return widget
