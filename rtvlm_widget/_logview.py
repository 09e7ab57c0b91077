"""The request log shown at the bottom of the panel (an anywidget; rows go as messages, not traits)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import traitlets

from ._records import Answer
from ._widget import static_file

__all__ = ["LogView", "log_row"]


def log_row(answer: Answer) -> dict[str, Any]:
    """One log line: time, model, latency, status, tokens and the answer (text, shown as text)."""
    usage = answer.usage
    return {
        "time": time.strftime("%H:%M:%S", time.localtime(answer.created_at)),
        "model": answer.model or "",
        "latency_ms": round(answer.latency_s * 1000, 1) if answer.ok else None,
        "status": (
            # A thinking model that thought but never answered: the row says so first.
            f"reasoning only: {answer.error}"
            if not answer.ok and answer.reasoning and not answer.text
            else f"error: {answer.error}"
            if not answer.ok
            else f"invalid: {answer.data_error}"
            if answer.data_error
            else "ok"
        ),
        "tokens": f"{usage.prompt_tokens}+{usage.completion_tokens}" if usage else "",
        "text": answer.text,
    }


class LogView(anywidget.AnyWidget):
    """A bounded table of requests with Copy answer, Copy log, Clear and an autoscroll toggle."""

    _esm = static_file("log.js")

    max_rows = traitlets.Int(200, min=1).tag(sync=True)
    autoscroll = traitlets.Bool(True).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: deque[dict[str, Any]] = deque(maxlen=self.max_rows)
        self._on_clear: list[Callable[[], None]] = []
        self.on_msg(self._on_view_message)

    @traitlets.observe("max_rows")
    def _resize(self, change: dict[str, Any]) -> None:
        # The kernel's copy (replayed to a reloaded page) keeps the same bound as the table.
        # (Also called from __init__ for a max_rows= argument, before _rows exists.)
        self._rows = deque(getattr(self, "_rows", ()), maxlen=int(change["new"]))

    def add(self, *answers: Answer) -> None:
        """Append rows for ``answers``, in one message."""
        rows = [log_row(answer) for answer in answers]
        self._rows.extend(rows)
        self.send({"kind": "rows", "rows": rows})

    def add_note(self, message: str) -> None:
        """Append a row that is not an answer: ``message`` shown as an error."""
        row = {
            "time": time.strftime("%H:%M:%S"),
            "model": "",
            "latency_ms": None,
            "status": f"error: {message}",
            "tokens": "",
            "text": "",
        }
        self._rows.append(row)
        self.send({"kind": "rows", "rows": [row]})

    def clear(self) -> None:
        """Empty the log display (the session's history is kept)."""
        self._rows.clear()
        self.send({"kind": "rows", "rows": [], "reset": True})
        for callback in self._on_clear:
            callback()

    def on_clear(self, callback: Callable[[], None]) -> None:
        self._on_clear.append(callback)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def _on_view_message(self, _w: object, content: object, _buffers: Sequence[memoryview]) -> None:
        if not isinstance(content, dict):
            return
        if content.get("kind") == "replay":
            self.send({"kind": "rows", "rows": list(self._rows), "reset": True})
        elif content.get("kind") == "clear":
            self.clear()
