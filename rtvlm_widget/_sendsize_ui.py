"""The panel's send-size row: the choice (auto / a longest edge / original), what is in use, and the
last probe's table (size, pixels, prompt and image tokens, latency)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ._costs import AUTO, SendSize
from ._sendsize import ORIGINAL, SEND_SIZES
from ._ui import classed

__all__ = ["SendSizeControls"]

OPTIONS: list[tuple[str, int | str]] = [
    ("Auto", AUTO),
    *((f"{size} px", size) for size in SEND_SIZES),
    ("Original", ORIGINAL),
]


class SendSizeControls:
    """Dropdown + summary + probe table, kept in step with a :class:`SendSize`."""

    def __init__(
        self, size: SendSize, *, on_loop: Callable[[Callable[..., object]], Callable[..., None]]
    ) -> None:
        self._size = size
        values = [value for _, value in OPTIONS]
        current = size.mode if size.mode in values else ORIGINAL
        options = OPTIONS if size.mode in values else [*OPTIONS, (f"{size.mode} px", size.mode)]
        self.dropdown = classed(
            widgets.Dropdown(
                options=options, value=current, description="Send size", style={"description_width": "90px"}
            ),
            "rtvlm-send-size",
        )
        self.summary = classed(widgets.Label(value=size.describe()), "rtvlm-send-size-summary")
        # The table holds numbers and, for failed sizes, the server's error text: a read-only
        # text box, never HTML.
        self.table = classed(
            widgets.Textarea(
                value="", disabled=True, layout=widgets.Layout(width="100%", height="10.5em", display="none")
            ),
            "rtvlm-probe-table",
        )
        self.dropdown.observe(on_loop(self._on_choice), names="value")
        size.on_change(on_loop(self._show))
        self.root = widgets.VBox(
            [
                widgets.HBox([self.dropdown, self.summary], layout=widgets.Layout(align_items="center")),
                self.table,
            ]
        )

    def show_mode(self, mode: int | str) -> None:
        """Show ``mode`` in the dropdown (a size not offered is added to it)."""
        if mode not in [value for _, value in self.dropdown.options]:
            self.dropdown.options = [*self.dropdown.options, (f"{mode} px", mode)]
        self.dropdown.value = mode

    def _on_choice(self, change: dict[str, Any]) -> None:
        if change["new"] != self._size.mode:
            self._size.set_mode(change["new"])

    def _show(self, size: SendSize) -> None:
        self.summary.value = size.describe()
        if size.probe is not None:
            self.table.value = size.probe.table()
            self.table.layout.display = None
