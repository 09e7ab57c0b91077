"""A replay repeats each recorded request exactly: prompt, schema, thinking and every setting, from
the session in memory or from a saved folder, whatever the app's own settings are by then."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtvlm_widget import RealtimeVLM
from tests.servers.scripted import GatedServer

# Valid against both schemas below, so every answer parses.
ANSWER = json.dumps({"count": 2, "color": "red"})
COLOR_SCHEMA = {
    "type": "object",
    "properties": {"color": {"type": "string"}},
    "required": ["color"],
}


@dataclass
class Count:
    count: int
    color: str


def _frames() -> list[np.ndarray]:
    frames = [np.zeros((48, 64, 3), np.uint8) for _ in range(2)]
    frames[1][:, 32:] = (40, 200, 40)
    return frames


def _asked(server: GatedServer, since: int) -> list[dict[str, Any]]:
    """The image requests the server got after its first ``since`` ones (the background
    text-only token counts left out)."""
    return server.image_requests[since:]


def test_a_replay_sends_each_recorded_request_again_exactly(tmp_path: Path) -> None:
    with GatedServer(ANSWER, gated=False) as server:
        app = RealtimeVLM(
            base_url=server.base_url,
            prompt="The app's own prompt",
            source=_frames(),
            realtime=False,
            send_size="original",
        )
        try:
            # Two requests, each with settings of its own that the app's settings do not share.
            first = app.ask(
                "What colour?", schema=COLOR_SCHEMA, max_tokens=77, temperature=0.7, thinking=False
            )
            second = app.ask("How many?", schema=Count, max_tokens=55, temperature=1.3, stream=False)
            assert first.data == json.loads(ANSWER) and second.data == Count(2, "red")
            recorded = _asked(server, 0)
            assert len(recorded) == 2
            assert recorded[0]["response_format"]["json_schema"]["schema"] == COLOR_SCHEMA
            assert recorded[0]["chat_template_kwargs"] == {"enable_thinking": False}
            assert recorded[1]["response_format"]["json_schema"]["name"] == "Count"
            assert recorded[1]["stream"] is False and "chat_template_kwargs" not in recorded[1]
            assert first.params is not None and first.params.model == "gated"  # the one sent

            # The app moves on: none of this may leak into the replay.
            app.prompt = "Something else entirely"

            done = len(server.image_requests)
            comparison = app.replay(concurrency=1)
            assert [comparison[r, 1].ok for r in range(2)] == [True, True]  # type: ignore[union-attr]
            replayed = _asked(server, done)
            # The same frames, prompts, schemas, thinking and settings: the very same bodies.
            assert replayed == recorded
            assert comparison[1, 1].data == Count(2, "red")  # type: ignore[union-attr]

            # From a saved session: the schemas come back as dict schemas (the dataclass itself is
            # not in the file), and they are sent exactly as before.
            folder = app.save_session(tmp_path / "run")
            done = len(server.image_requests)
            app.replay(folder, concurrency=1)
            assert _asked(server, done) == recorded

            # Changes apply on top of each request's own settings, and nothing else changes.
            done = len(server.image_requests)
            app.replay(prompt="Again?", temperature=0.0, concurrency=1)
            changed = _asked(server, done)
            for old, new in zip(recorded, changed, strict=True):
                assert new["messages"][0]["content"][-1]["text"] == "Again?"
                assert new["temperature"] == 0.0
                same = {k: v for k, v in new.items() if k not in ("messages", "temperature")}
                assert same == {k: v for k, v in old.items() if k not in ("messages", "temperature")}
        finally:
            app.close()
