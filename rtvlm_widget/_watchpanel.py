"""The panel's "Watch" section: one row per condition (a state light, counts, the last edge, a
Remove button), a box to add one, and how many unchanged frames were not sent."""

from __future__ import annotations

import time
from collections.abc import Callable

import ipywidgets as widgets

from ._conditions import ON, PENDING, Condition
from ._ui import Badge, classed
from ._watch import Watcher

__all__ = ["WatchSection"]

#: The light's colour (tone) per state.
TONES = {ON: "ok", PENDING: "busy"}


class WatchSection:
    """Shows ``watcher``'s conditions; ``add(question)`` makes one from the text box."""

    def __init__(self, watcher: Watcher, add: Callable[[str], object]) -> None:
        self._watcher = watcher
        self._add = add
        self.question = classed(
            widgets.Text(placeholder="Tell me when… (a yes/no question)", layout=widgets.Layout(width="60%")),
            "rtvlm-watch-question",
        )
        self.add_button = classed(widgets.Button(description="Watch", icon="eye"), "rtvlm-watch-add")
        self.problem = classed(widgets.Label(value=""), "rtvlm-watch-problem")
        self.summary = classed(widgets.Label(value=""), "rtvlm-watch-summary")
        self.rows = classed(widgets.VBox([]), "rtvlm-watch-rows")
        heading = widgets.HTML(value="<b>Watch</b>")  # a fixed heading, never model output
        adder = widgets.HBox([self.question, self.add_button, self.problem])
        self.root = classed(widgets.VBox([heading, self.rows, adder, self.summary]), "rtvlm-watch")
        self._shown: list[tuple[Condition, Badge, widgets.Label, widgets.Button]] = []
        self.add_button.on_click(lambda _b: self._submit())
        watcher.on_change(self.refresh)
        self.refresh()

    def _submit(self) -> None:
        text = self.question.value.strip()
        try:
            self._add(text)
        except (TypeError, ValueError) as exc:
            self.problem.value = str(exc)
            return
        self.problem.value = ""
        self.question.value = ""

    def refresh(self) -> None:
        """Rebuild the rows when conditions came or went; otherwise update lights and counts."""
        conditions = list(self._watcher.conditions)
        if [c for c, *_ in self._shown] != conditions:
            self._shown = [self._row(c) for c in conditions]
            self.rows.children = [
                classed(widgets.HBox([light.widget, label, remove]), "rtvlm-watch-row")
                for _, light, label, remove in self._shown
            ]
        for condition, light, label, _ in self._shown:
            light.set(condition.state, TONES.get(condition.state, "idle"))
            edge = (
                time.strftime("%H:%M:%S", time.localtime(condition.last_edge))
                if condition.last_edge is not None
                else "never"
            )
            # Label values are text, never HTML: the question is the user's own words.
            label.value = (
                f"{condition.question} · yes {condition.yes} / no {condition.no} · "
                f"entered {condition.enters}× · last edge {edge}"
            )
        w = self._watcher
        self.summary.value = (
            f"{w.evaluated} asked, {w.skipped} unchanged frames not sent, {len(w.events)} edges"
            if conditions or w.evaluated
            else ""
        )

    def _row(self, condition: Condition) -> tuple[Condition, Badge, widgets.Label, widgets.Button]:
        light = Badge("watch-light", condition.state)
        label = classed(widgets.Label(), "rtvlm-watch-label")
        remove = classed(widgets.Button(description="Remove", icon="times"), "rtvlm-watch-remove")
        remove.layout.width = "auto"
        remove.on_click(lambda _b: condition.remove())
        return condition, light, label, remove
