"""The test server itself: a real ``llama-server`` serving the generated tiny vision model.

These pin down what the other tests rely on: the alias, the image-token cost, answers that always
run to ``max_tokens``, determinism at temperature 0, images that change the answer, SSE streaming,
and the error a server without ``--mmproj`` gives for an image.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pytest

from tests.servers import llama_build, tiny_vlm
from tests.servers.llama import LlamaServer
from tests.servers.tiny_vlm import IMAGE_TOKENS

Image = npt.NDArray[np.uint8]

# The tiny model only ever emits its word pieces, each with a leading space.
WORDS_RE = re.compile(r"( [a-z]+)+")


@pytest.fixture(scope="module")
def own_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_vlm.generate(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="module")
def own_llama(
    own_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    text, mmproj = own_model
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    with LlamaServer(llama_build.build(), text, mmproj, log_path=log) as server:
        yield server


def frame(kind: str, size: tuple[int, int] = (640, 480)) -> Image:
    """A synthetic 640x480 BGR camera frame; each kind looks clearly different."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    if kind == "quadrant":
        image = np.full((height, width, 3), (30, 160, 220), np.uint8)
        image[: height // 2, : width // 2] = (225, 160, 35)
        return image
    if kind == "gradient":
        ramp = (xx * 255 // width).astype(np.uint8)
        return np.stack([ramp, 255 - ramp, (yy * 255 // height).astype(np.uint8)], axis=-1)
    if kind == "checker":
        cells = ((xx // 80 + yy // 80) % 2 * 255).astype(np.uint8)
        return np.stack([cells, cells, cells], axis=-1)
    if kind == "ball":
        image = np.full((height, width, 3), 60, np.uint8)
        cv2.circle(image, (width // 3, height // 2), 120, (0, 200, 255), -1)
        return image
    raise ValueError(kind)


def data_url(image: Image) -> str:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode()


def chat_body(
    image: Image | None, *, max_tokens: int = 12, image_first: bool = False, **extra: Any
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "What do you see?"}]
    if image is not None:
        part = {"type": "image_url", "image_url": {"url": data_url(image)}}
        content.insert(0 if image_first else 1, part)
    return {
        "model": "tiny-vlm",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


def chat(server: LlamaServer, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def answer(server: LlamaServer, image: Image | None, **extra: Any) -> str:
    text: str = chat(server, chat_body(image, **extra))["choices"][0]["message"]["content"]
    return text


def test_models_lists_the_alias_as_multimodal(own_llama: LlamaServer) -> None:
    response = httpx.get(f"{own_llama.base_url}/v1/models", timeout=10)
    assert response.status_code == 200
    listing = response.json()
    assert [m["id"] for m in listing["data"]] == ["tiny-vlm"]
    assert "multimodal" in listing["models"][0]["capabilities"]


@pytest.mark.parametrize("image_first", [False, True], ids=["text-then-image", "image-then-text"])
def test_image_costs_image_tokens_and_answer_runs_to_max_tokens(
    own_llama: LlamaServer, image_first: bool
) -> None:
    with_image = chat(own_llama, chat_body(frame("quadrant"), max_tokens=7, image_first=image_first))
    text_only = chat(own_llama, chat_body(None, max_tokens=7))
    assert with_image["usage"]["prompt_tokens"] - text_only["usage"]["prompt_tokens"] == IMAGE_TOKENS
    for result in (with_image, text_only):
        assert result["usage"]["completion_tokens"] == 7
        assert result["choices"][0]["finish_reason"] == "length"
        text = result["choices"][0]["message"]["content"]
        assert WORDS_RE.fullmatch(text) and len(text.split()) == 7, text


def test_same_image_same_answer_at_temperature_zero(own_llama: LlamaServer) -> None:
    image = frame("ball")
    assert answer(own_llama, image, max_tokens=16) == answer(own_llama, image, max_tokens=16)


def test_different_images_different_answers(own_llama: LlamaServer) -> None:
    kinds = ("quadrant", "gradient", "checker", "ball")
    answers = {kind: answer(own_llama, frame(kind), max_tokens=12) for kind in kinds}
    for a, b in itertools.combinations(kinds, 2):
        assert answers[a] != answers[b], answers
    # The image, not only the text, decides the answer from its first few words on.
    assert len({" ".join(text.split()[:4]) for text in answers.values()}) >= 3, answers


def test_stream_sends_sse_chunks_usage_and_done(own_llama: LlamaServer) -> None:
    image = frame("gradient")
    body = chat_body(image, max_tokens=6, stream=True, stream_options={"include_usage": True})
    events: list[str] = []
    with httpx.stream("POST", f"{own_llama.base_url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "length"
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] == 6
    # Streaming changes the transport, not the answer.
    assert text == answer(own_llama, image, max_tokens=6)


def test_server_without_mmproj_refuses_images(own_model: tuple[Path, Path], tmp_path: Path) -> None:
    with LlamaServer(llama_build.build(), own_model[0], None, log_path=tmp_path / "server.log") as server:
        response = httpx.post(
            f"{server.base_url}/v1/chat/completions", json=chat_body(frame("quadrant")), timeout=60
        )
        # Text still works on the same server.
        assert WORDS_RE.fullmatch(answer(server, None, max_tokens=3))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["message"] == (
        "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
    )
    assert error["type"] == "server_error"
