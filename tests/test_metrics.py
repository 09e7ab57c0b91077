"""Readouts and log rows, computed from answers (pure functions, a fake clock)."""

from __future__ import annotations

from rtvlm_widget import Answer, ChatParams, Usage
from rtvlm_widget._logview import log_row
from rtvlm_widget._metrics import RollingStats
from rtvlm_widget._plot import percentile


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_median_and_decay() -> None:
    clock = Clock()
    stats = RollingStats(window_s=10, keep=3, clock=clock)
    assert stats.readout().answers_per_s == 0.0
    for latency in (0.1, 0.3, 0.2, 0.9):
        stats.add(latency)
        clock.now += 0.5
    clock.now -= 0.5
    readout = stats.readout()
    assert readout.answers_per_s == 3 / 1.5  # four answers 0.5 s apart
    assert readout.last_latency_s == 0.9
    assert readout.median_latency_s == 0.3  # of the last three: 0.3, 0.2, 0.9
    assert "2.0 answers/s" in readout.describe() and "last 900 ms" in readout.describe()
    clock.now += 60
    assert stats.readout().answers_per_s == 0.0  # nothing within the window any more


def _answer(**kw: object) -> Answer:
    base: dict[str, object] = dict(
        seq=1, text="a cat\non a mat", params=ChatParams("p", model="m", max_tokens=5, temperature=0.0),
        latency_s=0.0123, total_s=0.02, usage=Usage(44, 5), created_at=0.0,
    )  # fmt: skip
    base.update(kw)
    return Answer(**base)  # type: ignore[arg-type]


def test_log_row_of_an_answer_and_of_a_failure() -> None:
    row = log_row(_answer())
    assert row["model"] == "m" and row["latency_ms"] == 12.3 and row["status"] == "ok"
    assert row["tokens"] == "44+5" and row["text"] == "a cat\non a mat"
    failed = log_row(_answer(text="", usage=None, error="cannot reach http://x/v1/models"))
    assert failed["status"] == "error: cannot reach http://x/v1/models"
    assert failed["latency_ms"] is None and failed["tokens"] == ""


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0
