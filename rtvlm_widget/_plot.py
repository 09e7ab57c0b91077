"""A small latency plot for the panel: recent answers' total time and time to first token."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import anywidget
import traitlets

from ._records import Answer
from ._widget import static_file

__all__ = ["LatencyPlot", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


class LatencyPlot(anywidget.AnyWidget):
    """Bars for the last ``keep`` answers (a few dozen numbers in a trait, no frames)."""

    _esm = static_file("plot.js")

    #: ``[[total_ms, first_token_ms or None, model_ms or None], …]``, oldest first; ``model_ms``
    #: is the server's own prefill + decode time, where it reports it (llama.cpp).
    samples = traitlets.List(traitlets.List()).tag(sync=True)
    p50_ms = traitlets.Float(0.0).tag(sync=True)
    p95_ms = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, keep: int = 60, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._recent: deque[list[float | None]] = deque(maxlen=keep)

    def add(self, *answers: Answer) -> None:
        """Plot successful answers' end-to-end time (and time to first token), in one update."""
        timings = [a.timing for a in answers if a.ok and a.timing is not None]
        if not timings:
            return
        for timing in timings:
            first, model = timing.first_token_s, timing.model_s
            self._recent.append(
                [
                    round(timing.total_s * 1000, 1),
                    None if first is None else round(first * 1000, 1),
                    None if model is None else round(model * 1000, 1),
                ]
            )
        totals = [float(s[0]) for s in self._recent if s[0] is not None]
        with self.hold_sync():
            self.p50_ms = percentile(totals, 50)
            self.p95_ms = percentile(totals, 95)
            self.samples = list(self._recent)
