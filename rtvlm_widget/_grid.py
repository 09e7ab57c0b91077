"""A results grid (ipywidgets): rows × columns of answers filling in as they finish, with progress.

Used by ``compare()`` (prompts × models on one frame) and ``replay()`` (recorded frames × the
recorded and the new answer). Answer text is untrusted: it goes into ``Textarea`` values, never
into HTML.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets

from ._records import Answer
from ._ui import classed

__all__ = ["ResultGrid"]

_CELL_LAYOUT = {"width": "100%", "height": "5.5em"}


class ResultGrid:
    """The widget tree of one comparison; ``set(row, column, answer)`` fills a cell."""

    def __init__(
        self,
        title: str,
        rows: Sequence[str],
        columns: Sequence[str],
        *,
        thumbnails: Sequence[bytes] | None = None,
        shared_thumbnail: bytes | None = None,
    ) -> None:
        self._total = len(rows) * len(columns)
        self._done = 0
        self.progress = widgets.IntProgress(value=0, min=0, max=max(1, self._total), description="")
        self.counter = widgets.Label(f"0 / {self._total} done")
        self._texts: dict[tuple[int, int], widgets.Textarea] = {}
        self._notes: dict[tuple[int, int], widgets.Label] = {}
        children: list[widgets.Widget] = [widgets.Label("")]
        children += [classed(widgets.Label(str(c)), "rtvlm-grid-head") for c in columns]
        for r, row in enumerate(rows):
            head: list[widgets.Widget] = []
            if thumbnails is not None and r < len(thumbnails) and thumbnails[r]:
                head.append(widgets.Image(value=thumbnails[r], format="jpeg", width=120))
            head.append(widgets.Label(str(row)))
            children.append(classed(widgets.VBox(head), "rtvlm-grid-row"))
            for c in range(len(columns)):
                text = widgets.Textarea(value="", disabled=True, placeholder="waiting…", layout=_CELL_LAYOUT)
                note = widgets.Label("")
                self._texts[r, c], self._notes[r, c] = text, note
                children.append(classed(widgets.VBox([text, note]), "rtvlm-grid-cell"))
        grid = widgets.GridBox(
            children,
            layout=widgets.Layout(
                grid_template_columns=f"minmax(120px, 1fr) repeat({len(columns)}, minmax(160px, 2fr))",
                grid_gap="4px",
            ),
        )
        top: list[widgets.Widget] = [widgets.HBox([widgets.Label(title), self.progress, self.counter])]
        if shared_thumbnail:
            top.append(widgets.Image(value=shared_thumbnail, format="jpeg", width=240))
        self.root = classed(widgets.VBox([*top, grid]), "rtvlm-grid")

    def set(self, row: int, column: int, answer: Answer) -> None:
        """Show ``answer`` in its cell (as text) and move the progress bar."""
        self._fill(row, column, answer)
        self._done += 1
        self._show_progress()

    def preset(self, row: int, column: int, answer: Answer) -> None:
        """Fill a cell that needs no request (a replay's recorded answer); not counted as work."""
        self._fill(row, column, answer)
        self._total -= 1
        self._show_progress()

    def _fill(self, row: int, column: int, answer: Answer) -> None:
        text, note = self._texts[row, column], self._notes[row, column]
        if answer.ok:
            text.value = answer.text
            tokens = f", {answer.usage.completion_tokens} tokens" if answer.usage else ""
            note.value = f"{answer.latency_s * 1000:.0f} ms{tokens}"
        else:
            text.value = ""
            note.value = f"error: {answer.error}"

    def _show_progress(self) -> None:
        self.progress.max = max(1, self._total)
        self.progress.value = self._done
        self.counter.value = f"{self._done} / {self._total} done"
