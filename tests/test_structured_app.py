"""Structured answers through the whole app against llama-server: the schema reaches the server (its
grammar makes even the random-weight model answer valid JSON), answers carry data and boxes,
invalid ones are kept with the reason, and annotated() draws what was found."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rtvlm_widget import RealtimeVLM, load_session
from rtvlm_widget._shapes import DETECT_SCHEMA, Box
from tests.servers.llama import LlamaServer

# The generated model spells most words a byte per token: a short prompt leaves room for JSON.
PROMPT = "List the objects."


def _at_least_one_box() -> dict[str, Any]:
    """The detection preset's schema, but an empty list is not allowed (the random-weight model
    would otherwise often answer with none)."""
    schema = copy.deepcopy(DETECT_SCHEMA)
    schema["properties"]["objects"]["minItems"] = 1
    return schema


def _frames() -> list[np.ndarray]:
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:, 160:] = (40, 200, 40)
    return [frame]


@dataclass
class Count:
    count: int
    color: Literal["red", "green", "blue"]


def test_schema_answers_carry_data_boxes_and_an_annotated_frame(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    app = RealtimeVLM(
        base_url=llama_server.base_url,
        prompt=PROMPT,
        schema=_at_least_one_box(),
        max_tokens=600,
        temperature=1.0,
        source=_frames(),
        send_size="original",
    )
    try:
        boxes: list[Any] = []
        for _ in range(3):
            answer = app.ask()
            assert answer.finish_reason == "stop", answer.text
            assert answer.data_error is None and isinstance(answer.data, dict), answer.text
            objects = answer.data["objects"]
            assert len(objects) >= 1 and len(answer.shapes) <= len(objects)
            assert all(isinstance(s, Box) and 0 <= s.x1 <= s.x2 <= 1 for s in answer.shapes)
            boxes.extend(answer.shapes)
            drawn = answer.annotated()
            assert drawn.shape == (240, 320, 3)
            if answer.shapes:
                assert not np.array_equal(drawn, _frames()[0])
        assert boxes, "three constrained answers and not one box"

        # Cut short by max_tokens: kept in the history with the reason, not raised.
        cut = app.ask(max_tokens=3)
        assert cut.ok and cut.data is None and cut.data_error is not None
        assert "max_tokens" in cut.data_error

        # Per call: a dataclass schema gives an instance.
        counted = app.ask("How many?", schema=Count, max_tokens=100)
        assert isinstance(counted.data, Count) and isinstance(counted.data.count, int), counted.text

        # The saved session keeps the data and the boxes.
        back = load_session(app.save_session(tmp_path / "run"))
        assert back[0].data == app.history[0].data and back[0].shapes == app.history[0].shapes
        assert back[4].data == {"count": counted.data.count, "color": counted.data.color}
        assert "invalid" in app._panel.log.rows[3]["status"]
    finally:
        app.close()
