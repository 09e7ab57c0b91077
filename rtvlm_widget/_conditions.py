"""Conditions watched on video ("Tell me when…"): their settings, their state over time, the
edges they fire, and how well they did against labelled intervals.

No HTTP and no widgets here: ``_watch.py`` asks the model and feeds each condition its verdicts;
this module decides when a condition enters (``confirm`` yes in a row, not within ``cooldown`` of
its last enter) and exits (``clear`` no in a row), which tolerates small models that flip from
frame to frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload
from urllib.parse import urlsplit

__all__ = ["Condition", "Event", "Events", "Score", "score_events"]

#: What a condition's light shows.
OFF, PENDING, ON = "off", "pending", "on"


@dataclass
class Event:
    """A rising (``enter``) or falling (``exit``) edge of a condition."""

    condition: str
    kind: str
    #: Epoch seconds when the deciding frame was captured.
    time: float
    #: The evaluation that decided it (numbered per watcher).
    seq: int
    #: The model's probability of "yes" for this condition, where the server sent logprobs.
    p_yes: float | None
    #: The model's answer (JSON) and its short reason, if asked for one.
    answer: str
    reason: str = ""
    #: Seconds the deciding request took.
    latency_s: float = 0.0
    #: The deciding frame (JPEG).
    jpeg: bytes = field(default=b"", repr=False)
    #: Files written for it (a snapshot, a clip), once written.
    snapshot: Path | None = None
    clip: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "condition": self.condition,
            "kind": self.kind,
            "seq": self.seq,
            "p_yes": self.p_yes,
            "answer": self.answer,
            "reason": self.reason,
            "latency_s": self.latency_s,
            "snapshot": str(self.snapshot) if self.snapshot else None,
            "clip": str(self.clip) if self.clip else None,
        }


class Events(Sequence[Event]):
    """Every edge so far, oldest first; ``to_pandas()`` for a table."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self._events = list(events)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Events: ...

    def __getitem__(self, index: int | slice) -> Event | Events:
        if isinstance(index, slice):
            return Events(self._events[index])
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __repr__(self) -> str:
        return f"Events({len(self)} edges)"

    def append(self, event: Event) -> None:
        self._events.append(event)

    def to_records(self) -> list[dict[str, Any]]:
        return [event.as_dict() for event in self._events]

    def to_pandas(self) -> Any:
        """A DataFrame, one row per edge (pandas must be installed)."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError("Events.to_pandas() needs pandas: pip install pandas") from None
        columns = list(Event("", "", 0.0, 0, None, "").as_dict())
        return pd.DataFrame(self.to_records(), columns=columns)


EventCallback = Callable[[Event], object]


class Condition:
    """A yes/no question asked about the video, with when it counts as holding.

    Made by ``RealtimeVLM.when(...)``; see there for the arguments. ``state`` is ``off``,
    ``pending`` (some yes, not yet ``confirm`` of them) or ``on``.
    """

    def __init__(
        self,
        question: str,
        *,
        confirm: int = 2,
        clear: int = 2,
        cooldown: float = 30.0,
        threshold: float | None = None,
        on_enter: EventCallback | None = None,
        on_exit: EventCallback | None = None,
        snapshot: bool | str | Path = False,
        clip: tuple[float, float] | None = None,
        webhook: str | None = None,
        webhook_headers: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(question, str) or not question.strip():
            raise TypeError(f"a condition is a yes/no question as a non-empty string, not {question!r}")
        for name, value in (("confirm", confirm), ("clear", clear)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of answers >= 1, not {value!r}")
        if not _number(cooldown) or cooldown < 0:
            raise ValueError(f"cooldown must be a number of seconds >= 0, not {cooldown!r}")
        if threshold is not None and (not _number(threshold) or not 0 <= threshold <= 1):
            raise ValueError(f"threshold must be a probability from 0 to 1 (or None), not {threshold!r}")
        if clip is not None and (
            not isinstance(clip, tuple) or len(clip) != 2 or not all(_number(x) and x >= 0 for x in clip)
        ):
            raise ValueError(f"clip must be (seconds before, seconds after), both >= 0, not {clip!r}")
        for name, fn in (("on_enter", on_enter), ("on_exit", on_exit)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a function taking the Event, not {fn!r}")
        if webhook is not None:
            parts = urlsplit(webhook) if isinstance(webhook, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"webhook must be an http(s) URL such as https://example.com/hook, not {_shown(webhook)}"
                )
        self.question = question.strip()
        self.confirm, self.clear, self.cooldown, self.threshold = confirm, clear, float(cooldown), threshold
        self.on_enter, self.on_exit = on_enter, on_exit
        self.snapshot, self.clip = snapshot, clip
        self.webhook = webhook
        # Never printed, logged or shown: they may hold a token.
        self._webhook_headers = dict(webhook_headers or {})
        #: Answers so far: how many said yes, no, or could not be read.
        self.yes = self.no = self.unreadable = 0
        self.enters = self.exits = 0
        #: Epoch seconds of the last edge (None before the first).
        self.last_edge: float | None = None
        self._on = False
        self._yes_run = self._no_run = 0
        self._last_enter: float | None = None
        self._remove: Callable[[Condition], None] | None = None

    def __repr__(self) -> str:
        return f"Condition({self.question!r}, state={self.state!r}, enters={self.enters})"

    @property
    def state(self) -> str:
        if self._on:
            return ON
        return PENDING if self._yes_run else OFF

    def remove(self) -> None:
        """Stop watching this condition (its events stay in ``events``)."""
        if self._remove is not None:
            self._remove(self)
            self._remove = None

    def copy(self) -> Condition:
        """The same question and settings, in its starting state (replays use one)."""
        return Condition(
            self.question,
            confirm=self.confirm,
            clear=self.clear,
            cooldown=self.cooldown,
            threshold=self.threshold,
            on_enter=self.on_enter,
            on_exit=self.on_exit,
            snapshot=self.snapshot,
            clip=self.clip,
            webhook=self.webhook,
            webhook_headers=self._webhook_headers,
        )

    def verdict(self, said: bool | None, p_yes: float | None) -> bool | None:
        """Yes or no for one answer: ``threshold`` on P(yes) where there is one, else the answer."""
        if self.threshold is not None and p_yes is not None:
            return p_yes >= self.threshold
        return said

    def update(self, yes: bool | None, at: float) -> str | None:
        """Feed one verdict (None: unreadable) taken at epoch ``at``; ``enter``, ``exit`` or None."""
        if yes is None:
            self.unreadable += 1
            return None
        if yes:
            self.yes += 1
        else:
            self.no += 1
        if self._on:
            self._no_run = 0 if yes else self._no_run + 1
            if self._no_run >= self.clear:
                self._on, self._no_run, self._yes_run = False, 0, 0
                self.exits += 1
                self.last_edge = at
                return "exit"
            return None
        self._yes_run = self._yes_run + 1 if yes else 0
        cooled = self._last_enter is None or at - self._last_enter >= self.cooldown
        if self._yes_run >= self.confirm and cooled:
            self._on, self._yes_run, self._no_run = True, 0, 0
            self._last_enter = self.last_edge = at
            self.enters += 1
            return "enter"
        return None


@dataclass(frozen=True)
class Score:
    """How a condition's enters matched the intervals in which it truly held."""

    true_positives: int
    false_positives: int
    false_negatives: int
    #: Seconds from each matched interval's start to its enter.
    delays_s: tuple[float, ...]

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def mean_delay_s(self) -> float | None:
        return sum(self.delays_s) / len(self.delays_s) if self.delays_s else None

    def __repr__(self) -> str:
        delay = "n/a" if self.mean_delay_s is None else f"{self.mean_delay_s:.2f} s"
        return (
            f"Score(precision={self.precision:.2f}, recall={self.recall:.2f}, f1={self.f1:.2f}, "
            f"mean_delay={delay}, tp={self.true_positives}, fp={self.false_positives}, "
            f"fn={self.false_negatives})"
        )


def score_events(
    enters: Sequence[float], labels: Sequence[tuple[float, float]], *, tolerance_s: float = 0.0
) -> Score:
    """Match enter times (seconds, on the labels' clock) to labelled intervals ``(start, end)``.

    An enter inside an interval (up to ``tolerance_s`` after its end: confirming takes frames)
    that no earlier enter matched is a true positive, with delay ``enter - start``; any other
    enter is a false positive; an interval no enter matched is a false negative.
    """
    intervals = sorted((float(a), float(b)) for a, b in labels)
    for start, end in intervals:
        if not (_number(start) and _number(end)) or end < start:
            raise ValueError(f"a label is (start, end) in seconds with start <= end, not {(start, end)}")
    matched = [False] * len(intervals)
    tp = fp = 0
    delays: list[float] = []
    for at in sorted(enters):
        hit = next(
            (
                i
                for i, (start, end) in enumerate(intervals)
                if not matched[i] and start <= at <= end + tolerance_s
            ),
            None,
        )
        if hit is None:
            fp += 1
            continue
        matched[hit] = True
        tp += 1
        delays.append(at - intervals[hit][0])
    return Score(tp, fp, matched.count(False), tuple(delays))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object) -> str:
    """A refused webhook for a message, without any credentials it carries."""
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.password or parts.username:
            return repr(parts._replace(netloc=parts.hostname or "").geturl())
        return repr(value)
    return f"a {type(value).__name__}"
