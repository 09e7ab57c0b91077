"""Watched conditions ("Tell me when…"): edges, actions and scoring, against an oracle server
that answers truthfully from the pixels (tests/servers/oracle.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rtvlm_widget import ChatParams, RealtimeVLM, VLMClient
from rtvlm_widget._chat import TokenLogprob
from rtvlm_widget._conditions import Condition, Event, score_events
from rtvlm_widget._controller import Controller
from rtvlm_widget._protocol import Frame
from rtvlm_widget._watch import Watcher, p_yes_of
from tests.aio import run_async
from tests.servers.oracle import MAGENTA, OracleServer
from tests.servers.threaded import JsonHandler, ThreadedServer
from tests.test_controller import StillCamera

#: The generated video: 24 frames, 0.5 s apart; the magenta square shows in frames 6-11 and 18-20.
HOLDS = [6 <= i <= 11 or 18 <= i <= 20 for i in range(24)]
STEP_S = 0.5
T0 = 1_800_000_000.0


def _frame(i: int, magenta: bool) -> Frame:
    rng = np.random.default_rng(i)  # every frame differs a little, like a camera's
    image = rng.integers(60, 90, (240, 320, 3), dtype=np.uint8)
    if magenta:
        cv2.rectangle(image, (100, 60), (180, 140), MAGENTA, -1)
    jpeg = bytes(cv2.imencode(".jpg", image)[1])
    return Frame(seq=i + 1, jpeg=jpeg, width=320, height=240, captured_at_ms=(T0 + i * STEP_S) * 1000)


def test_confirm_clear_and_cooldown_decide_the_edges() -> None:
    door = Condition("Is a person at the door?", confirm=2, clear=3, cooldown=10)
    said = [1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1]
    edges = [(i, door.update(bool(y), float(i))) for i, y in enumerate(said)]
    assert [(i, e) for i, e in edges if e] == [(3, "enter"), (10, "exit"), (13, "enter"), (16, "exit")]
    # At 12 two yes in a row came 9 s after the enter at 3 (cooldown 10): held back until 13;
    # at 18 likewise (5 s after 13): it stays pending.
    assert door.state == "pending" and door.enters == 2 and door.exits == 2
    assert door.update(None, 19.0) is None and door.unreadable == 1
    pending = Condition("x?", confirm=3)
    pending.update(True, 0.0)
    assert pending.state == "pending"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"question": 42}, "a condition is a yes/no question as a non-empty string, not 42"),
        ({"cooldown": -1}, "cooldown must be a number of seconds >= 0, not -1"),
        ({"confirm": 0}, "confirm must be a whole number of answers >= 1, not 0"),
        ({"webhook": "ftp://x.test/hook"}, "webhook must be an http(s) URL such as https://example.com/hook"),
        ({"threshold": 1.5}, "threshold must be a probability from 0 to 1"),
    ],
)
def test_bad_conditions_are_refused_with_the_reason(kwargs: dict[str, Any], message: str) -> None:
    settings = {"question": "Is it raining?", **kwargs}
    with pytest.raises((TypeError, ValueError)) as info:
        Condition(**settings)
    assert str(info.value).startswith(message)
    # A webhook's credentials never appear in the message.
    with pytest.raises(ValueError, match="webhook must be") as secret:
        Condition("x?", webhook="ftp://user:s3cret@x.test/hook")
    assert "s3cret" not in str(secret.value)


def test_scoring_is_exact() -> None:
    score = score_events([3.5, 4.0, 9.0, 20.0], [(3.0, 6.0), (8.0, 10.0), (15.0, 16.0)])
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 2, 1)
    assert score.precision == 0.5 and score.recall == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(4 / 7) and score.mean_delay_s == pytest.approx(0.75)


def test_p_yes_comes_from_the_boolean_token() -> None:
    content = '{"c0": true}'
    tokens = [
        TokenLogprob('{"', -0.1),
        TokenLogprob("c0", -0.1),
        TokenLogprob('":', -0.1),
        TokenLogprob(" true", np.log(0.8), ((" true", np.log(0.8)), (" false", np.log(0.2)))),
        TokenLogprob("}", -0.1),
    ]
    assert p_yes_of(tokens, content, content.index("true")) == pytest.approx(0.8)
    assert p_yes_of([*tokens[:3], TokenLogprob(" true", -0.2)], content, content.index("true")) is None


def _with_image(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if any(p.get("type") == "image_url" for p in r["messages"][-1]["content"])]


class _Hooks(ThreadedServer):
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.got = threading.Event()
        super().__init__()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                owner.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                owner.headers.append(dict(self.headers.items()))
                owner.got.set()
                self._json(200, {"ok": True})

        return Handler


def test_edges_land_on_the_right_frames_and_run_their_actions(tmp_path: Path) -> None:
    frames = [_frame(i, holds) for i, holds in enumerate(HOLDS)]
    seen: list[Event] = []
    failing = Condition("Is there a green ball?", on_enter=lambda e: 1 / 0)

    async def go(oracle: OracleServer, hooks: _Hooks) -> Watcher:
        controller = Controller(StillCamera(), VLMClient(oracle.base_url), ChatParams(prompt="caption"))
        watcher = Watcher(
            lambda params, frame: controller.request(params, frames=[frame]),
            lambda: controller.params,
            folder=tmp_path,
        )
        watcher.add(
            Condition(
                "Is there a magenta square?",
                confirm=2,
                clear=2,
                cooldown=0,
                on_enter=seen.append,
                on_exit=seen.append,
                snapshot=True,
                clip=(2.0, 0.0),
                webhook=hooks.base_url + "/hook",
                webhook_headers={"Authorization": "Bearer hook-token"},
            )
        )
        watcher.add(failing)  # its callback fails: logged, watching goes on
        try:
            for frame in frames:
                await watcher.evaluate(frame)
            await watcher.settle()
        finally:
            await controller.aclose()
        return watcher

    with OracleServer() as oracle, _Hooks() as hooks:
        watcher = run_async(go(oracle, hooks))
    edges = [(e.kind, round((e.time - T0) / STEP_S)) for e in watcher.events]
    # confirm=2: the second magenta frame enters; clear=2: the second frame without it exits.
    assert edges == [("enter", 7), ("exit", 13), ("enter", 19), ("exit", 22)]
    assert seen == list(watcher.events) and failing.enters == 0 and failing.no == 24
    # One request asks both conditions, a boolean each, as a schema the server is held to.
    body = oracle.requests[0]
    props = body["response_format"]["json_schema"]["schema"]["properties"]
    assert set(props) == {"c0", "c1"} and body["max_tokens"] <= 40 and body["logprobs"] is True
    enter = watcher.events[0]
    assert enter.snapshot is not None and enter.snapshot.read_bytes() == frames[7].jpeg
    assert enter.clip is not None
    clip = cv2.VideoCapture(str(enter.clip))
    count = int(clip.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = clip.read()
    clip.release()
    assert ok and count == 20 and first.shape[:2] == (240, 320)  # 2 s at 10 fps
    assert len(_with_image(oracle.requests)) == 24
    assert [b["kind"] for b in hooks.bodies] == ["enter", "exit", "enter", "exit"]
    assert hooks.bodies[0]["condition"] == "Is there a magenta square?"
    assert hooks.headers[0]["Authorization"] == "Bearer hook-token"
    score = score_events(
        [e.time - T0 for e in watcher.events if e.kind == "enter"], [(6 * STEP_S, 11 * STEP_S), (9.0, 10.0)]
    )
    assert score.f1 == 1.0 and score.mean_delay_s == pytest.approx(STEP_S)


def test_unchanged_frames_are_not_sent_and_the_last_verdicts_stand() -> None:
    still = _frame(0, True)
    frames = [
        Frame(seq=i, jpeg=still.jpeg, width=320, height=240, captured_at_ms=(T0 + i) * 1000) for i in range(5)
    ]

    async def go(oracle: OracleServer) -> Watcher:
        controller = Controller(StillCamera(), VLMClient(oracle.base_url), ChatParams(prompt="caption"))
        watcher = Watcher(lambda p, f: controller.request(p, frames=[f]), lambda: controller.params)
        watcher.add(Condition("Is there a magenta square?", confirm=3))
        try:
            for frame in frames:
                await watcher.evaluate(frame)
        finally:
            await controller.aclose()
        return watcher

    with OracleServer() as oracle:
        watcher = run_async(go(oracle))
        sent = len(_with_image(oracle.requests))  # not the text-only token count
    assert sent == 1 and watcher.evaluated == 1 and watcher.skipped == 4
    assert [e.kind for e in watcher.events] == ["enter"]  # the skipped frames still confirm


def test_app_watches_in_live_mode_and_the_panel_follows() -> None:
    """``app.when`` in live mode, frames from a kernel-side source: edges, lights, Remove."""
    images = [
        cv2.imdecode(np.frombuffer(_frame(i, h).jpeg, np.uint8), cv2.IMREAD_COLOR)
        for i, h in enumerate(HOLDS)
    ]

    async def go(oracle: OracleServer) -> tuple[list[str], list[str], int]:
        app = RealtimeVLM(
            base_url=oracle.base_url, source=images, realtime=False, interval=100.0, send_size="original"
        )
        lights: list[str] = []
        try:
            door = app.when("Is there a magenta square?", confirm=2, clear=2, cooldown=0)
            app.watch_every = 0.05
            section = app._watch_section
            # Each light the section shows, recorded as it changes (after the section's refresh).
            app._watcher.on_change(
                lambda: lights.extend(light.widget.value for _, light, *_ in section._shown)
            )
            app.start()
            deadline = time.monotonic() + 30
            while len(app.events) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            kinds = [e.kind for e in app.events]
            label = section._shown[0][2].value
            assert door.question in label and "entered" in label and "last edge" in label, label
            section._shown[0][3].click()  # Remove
            remaining = len(app._watcher.conditions)
            section.question.value = "   "
            section.add_button.click()
            assert section.problem.value.startswith("a condition is a yes/no question"), section.problem.value
            return kinds, lights, remaining
        finally:
            app.close()
            await app._controller.aclose()

    with OracleServer() as oracle:
        kinds, lights, remaining = run_async(go(oracle))
    assert kinds[:2] == ["enter", "exit"]
    assert {"off", "pending", "on"} <= set(lights), set(lights)
    assert remaining == 0
