"""Readouts computed from the session's answers: answers per second and latency statistics."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Readout", "RollingStats"]


@dataclass(frozen=True)
class Readout:
    """What the panel shows next to the run state."""

    answers_per_s: float
    last_latency_s: float | None
    median_latency_s: float | None
    count: int

    def describe(self) -> str:
        def ms(value: float | None) -> str:
            return "–" if value is None else f"{value * 1000:.0f} ms"

        return (
            f"{self.answers_per_s:.1f} answers/s · last {ms(self.last_latency_s)} · "
            f"median of {min(self.count, 20)} {ms(self.median_latency_s)}"
        )


class RollingStats:
    """Answers per second over a sliding time window; latency of the last ``keep`` answers."""

    def __init__(
        self,
        *,
        window_s: float = 10.0,
        keep: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._latencies: deque[float] = deque(maxlen=keep)
        self._times: deque[float] = deque()
        self._count = 0

    def add(self, latency_s: float) -> None:
        """Record one successful answer that took ``latency_s``."""
        now = self._clock()
        self._latencies.append(latency_s)
        self._times.append(now)
        self._count += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()

    def readout(self) -> Readout:
        now = self._clock()
        self._trim(now)
        # Rate over the span the window actually covers (so two answers 1 s apart read 1/s, not
        # 0.2/s over a 10 s window), measured up to now so it decays once answers stop.
        n = len(self._times)
        rate = (n - 1) / max(now - self._times[0], 1e-9) if n >= 2 else 0.0
        return Readout(
            answers_per_s=rate,
            last_latency_s=self._latencies[-1] if self._latencies else None,
            median_latency_s=statistics.median(self._latencies) if self._latencies else None,
            count=len(self._latencies),
        )
