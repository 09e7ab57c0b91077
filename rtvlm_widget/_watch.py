"""Watching conditions on live video: one request asks every condition about the newest frame.

The conditions share one JSON schema with a boolean per condition (and an optional short reason),
sent as ``response_format`` through the schema machinery, with ``max_tokens`` sized to it and
logprobs asked for (P(yes) where the server sends them). A frame that looks like the last one
asked about (a difference hash of a downscaled picture) is not sent: the last verdicts stand for
it, and the skip is counted. Each condition turns its verdicts into edges (``_conditions.py``);
an edge runs the condition's actions (callbacks, snapshot, clip, notification, webhook), whose
failures go to the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._actions import FrameRing, event_path, post_webhook, save_snapshot, write_clip
from ._chat import ChatParams, TokenLogprob
from ._conditions import Condition, Event, Events
from ._protocol import Frame
from ._records import Answer
from ._schema import extract_json, to_schema
from ._tasks import spawn

__all__ = ["Verdicts", "Watcher", "frame_hash", "p_yes_of"]

log = logging.getLogger("rtvlm_widget.watch")

#: Tokens a condition's answer takes in the JSON (key, colon, ``false``, comma), and the rest.
TOKENS_PER_CONDITION = 12
TOKENS_BASE = 16
TOKENS_FOR_REASON = 48

#: Frames whose difference hashes differ in at most this many of 64 bits count as unchanged.
CHANGE_THRESHOLD = 3

Request = Callable[[ChatParams, Frame], Awaitable[Answer]]


def frame_hash(jpeg: bytes) -> int | None:
    """A 64-bit difference hash of the frame (8x8 gradients of a downscaled grey picture)."""
    import cv2  # slow to import; only watching needs it here
    import numpy as np

    grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if grey is None:
        return None
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def p_yes_of(tokens: Sequence[TokenLogprob], content: str, value_at: int) -> float | None:
    """P(yes) at the boolean that starts at ``value_at`` in ``content``, from the logprobs of the
    token there (``true`` against ``false`` among it and its alternatives); None when the
    server sent none, or not both answers are among them."""
    if not tokens:
        return None
    joined = "".join(t.token for t in tokens)
    # A thinking model's tokens may start with its reasoning: the content is what ends them.
    base = len(joined) - len(content) if joined.endswith(content) else 0
    position = 0
    for token in tokens:
        if position + len(token.token) > base + value_at:
            yes = no = -math.inf
            for text, logprob in ((token.token, token.logprob), *token.top):
                word = text.strip().lower()
                if word and "true".startswith(word):
                    yes = max(yes, logprob)
                elif word and "false".startswith(word):
                    no = max(no, logprob)
            if yes == -math.inf or no == -math.inf:
                return None
            return 1.0 / (1.0 + math.exp(no - yes))
        position += len(token.token)
    return None


@dataclass(frozen=True)
class Verdicts:
    """One evaluation: per condition (by key), what the model said and P(yes)."""

    said: dict[str, bool | None]
    p_yes: dict[str, float | None]
    reason: str
    answer: Answer | None
    #: The frame was like the last one asked about: nothing was sent, the last verdicts stand.
    skipped: bool = False


class Watcher:
    """The conditions of one app, evaluated together on frames; edges in ``events``."""

    def __init__(
        self,
        request: Request,
        base_params: Callable[[], ChatParams],
        *,
        every: float = 1.0,
        reason: bool = False,
        change_threshold: int = CHANGE_THRESHOLD,
        folder: str | Path = "rtvlm-events",
    ) -> None:
        self._request = request
        self._base_params = base_params
        #: Seconds between evaluations in live mode.
        self.every = every
        #: Ask for a short reason beside the booleans (costs tokens).
        self.reason = reason
        #: Hamming distance (of 64) under which a frame counts as unchanged; -1 never skips.
        self.change_threshold = change_threshold
        #: Where snapshots and clips are written.
        self.folder = Path(folder)
        self.conditions: list[Condition] = []
        self.events = Events()
        #: Evaluations sent, and frames not sent because they had not changed.
        self.evaluated = 0
        self.skipped = 0
        self.ring = FrameRing()
        self._last_hash: int | None = None
        self._last: Verdicts | None = None
        self._last_keys: tuple[str, ...] = ()
        self._listeners: list[Callable[[], None]] = []
        self._event_listeners: list[Callable[[Event], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- conditions -----------------------------------------------------------------------------
    def add(self, condition: Condition) -> Condition:
        self.conditions.append(condition)
        condition._remove = self.remove
        self.ring.seconds = max([self.ring.seconds, *(sum(c.clip) + 2 for c in self.conditions if c.clip)])
        self._changed()
        return condition

    def remove(self, condition: Condition) -> None:
        if condition in self.conditions:
            self.conditions.remove(condition)
            self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` after every evaluation and every added or removed condition."""
        self._listeners.append(listener)

    def on_event(self, listener: Callable[[Event], None]) -> None:
        """``listener(event)`` for every edge (the notifications use it)."""
        self._event_listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            _safely(listener)

    # -- the request ----------------------------------------------------------------------------
    def keys(self, conditions: Sequence[Condition] | None = None) -> tuple[str, ...]:
        return tuple(f"c{i}" for i in range(len(self.conditions if conditions is None else conditions)))

    def params(self, conditions: Sequence[Condition] | None = None) -> ChatParams:
        """One request for all ``conditions``: the questions, a boolean each, room for just that."""
        conditions = self.conditions if conditions is None else conditions
        keys = self.keys(conditions)
        properties: dict[str, Any] = {
            key: {"type": "boolean", "description": c.question}
            for key, c in zip(keys, conditions, strict=True)
        }
        required = list(keys)
        if self.reason:
            properties["reason"] = {"type": "string", "maxLength": 120}
            required.append("reason")
        schema = to_schema(
            {"type": "object", "properties": properties, "required": required, "additionalProperties": False},
            name="conditions",
        )
        lines = "\n".join(f"{key}: {c.question}" for key, c in zip(keys, conditions, strict=True))
        prompt = f"Answer each question about the image with true or false, as JSON with these keys:\n{lines}"
        if self.reason:
            prompt += "\nAlso give a short reason."
        budget = (
            TOKENS_BASE + TOKENS_PER_CONDITION * len(conditions) + (TOKENS_FOR_REASON if self.reason else 0)
        )
        base = self._base_params()
        return replace(
            base,
            prompt=prompt,
            schema=schema,
            max_tokens=max(budget, 1),
            temperature=0.0,
            stream=False,
            top_logprobs=5,
        )

    def read(self, answer: Answer, keys: Sequence[str]) -> Verdicts:
        """The verdicts in an answer (the parsed data, or JSON found in its text)."""
        data = answer.data if isinstance(answer.data, dict) else None
        if data is None and answer.ok:
            try:
                found = extract_json(answer.text)
                data = found if isinstance(found, dict) else None
            except ValueError:
                data = None
        said: dict[str, bool | None] = {}
        p_yes: dict[str, float | None] = {}
        completion_tokens = answer.logprobs
        for key in keys:
            value = data.get(key) if data is not None else None
            said[key] = value if isinstance(value, bool) else None
            p_yes[key] = None
            if said[key] is not None:
                at = _value_position(answer.text, key)
                if at is not None:
                    p_yes[key] = p_yes_of(completion_tokens, answer.text, at)
        reason = data.get("reason") if data is not None else ""
        return Verdicts(said, p_yes, reason if isinstance(reason, str) else "", answer)

    async def evaluate(self, frame: Frame, conditions: Sequence[Condition] | None = None) -> Verdicts | None:
        """Ask about ``frame`` (unless it looks like the last one asked about) and feed the
        verdicts to the conditions; None without conditions."""
        conditions = list(self.conditions if conditions is None else conditions)
        if not conditions:
            return None
        at = frame.captured_at_ms / 1000 if frame.captured_at_ms else time.time()
        self.ring.add(at, frame.jpeg)
        keys = self.keys(conditions)
        digest = frame_hash(frame.jpeg) if self.change_threshold >= 0 else None
        last = self._last
        if (
            last is not None
            and digest is not None
            and self._last_hash is not None
            and keys == self._last_keys
            and bin(digest ^ self._last_hash).count("1") <= self.change_threshold
        ):
            self.skipped += 1
            verdicts = replace(last, skipped=True)
        else:
            answer = await self._request(self.params(conditions), frame)
            self.evaluated += 1
            verdicts = self.read(answer, keys)
            if answer.ok:
                self._last, self._last_hash, self._last_keys = verdicts, digest, keys
        self.feed(verdicts, conditions, frame, at)
        return verdicts

    def feed(
        self, verdicts: Verdicts, conditions: Sequence[Condition], frame: Frame, at: float
    ) -> list[Event]:
        """Turn one evaluation's verdicts into edges, and run their actions."""
        edges = []
        answer = verdicts.answer
        for key, condition in zip(self.keys(conditions), conditions, strict=True):
            p_yes = verdicts.p_yes.get(key)
            kind = condition.update(condition.verdict(verdicts.said.get(key), p_yes), at)
            if kind is None:
                continue
            event = Event(
                condition=condition.question,
                kind=kind,
                time=at,
                seq=self.evaluated,
                p_yes=p_yes,
                answer=answer.text if answer is not None else "",
                reason=verdicts.reason,
                latency_s=answer.latency_s if answer is not None and not verdicts.skipped else 0.0,
                jpeg=frame.jpeg,
            )
            self.events.append(event)
            edges.append(event)
            self._act(condition, event)
        self._changed()
        return edges

    # -- actions --------------------------------------------------------------------------------
    def _act(self, condition: Condition, event: Event) -> None:
        callback = condition.on_enter if event.kind == "enter" else condition.on_exit
        if callback is not None:
            _safely(callback, event)
        if event.kind == "enter" and condition.snapshot:
            folder = self.folder if condition.snapshot is True else Path(condition.snapshot)
            try:
                event.snapshot = save_snapshot(event, folder)
            except OSError as exc:
                log.warning("snapshot for %r not written: %s", condition.question, exc)
        if event.kind == "enter" and condition.clip:
            self._spawn(self._clip(condition, event))
        if condition.webhook:
            self._spawn(post_webhook(condition.webhook, event, condition._webhook_headers))
        for listener in self._event_listeners:
            _safely(listener, event)

    async def _clip(self, condition: Condition, event: Event) -> None:
        assert condition.clip is not None
        before, after = condition.clip
        await asyncio.sleep(after)  # the seconds after the edge arrive meanwhile
        start, end = event.time - before, event.time + after
        try:
            frames = self.ring.between(start, end)
            path = event_path(self.folder, event, ".mp4")
            event.clip = await asyncio.to_thread(write_clip, frames, path, start, end)
        except (OSError, ValueError) as exc:
            log.warning("clip for %r not written: %s", condition.question, exc)
        self._changed()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = spawn(work)
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the actions still running (clips being written, webhooks being posted)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- live -----------------------------------------------------------------------------------
    async def run(self, capture: Callable[[], Awaitable[Frame]]) -> None:
        """Evaluate a fresh frame every ``every`` seconds while there are conditions."""
        while True:
            began = time.perf_counter()
            if self.conditions:
                try:
                    await self.evaluate(await capture())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a bad frame or answer must not end watching
                    log.warning("watching: %s", exc)
            await asyncio.sleep(max(0.05, self.every - (time.perf_counter() - began)))

    def note(self, answer: Answer) -> None:
        """Keep a caption answer's frame for clips (an answer listener)."""
        if answer.jpeg and answer.captured_at:
            self.ring.add(answer.captured_at, answer.jpeg)


def _value_position(text: str, key: str) -> int | None:
    """Where the value of ``"key":`` starts in the JSON text."""
    at = text.find(f'"{key}"')
    if at < 0:
        return None
    colon = text.find(":", at + len(key) + 2)
    if colon < 0:
        return None
    start = colon + 1
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    return start if start < len(text) else None


def _safely(fn: Callable[..., object], *args: object) -> None:
    """A failing callback is logged, never allowed to stop watching."""
    try:
        fn(*args)
    except Exception:
        log.exception("a watch callback failed")
