"""The HTTP client against the real llama-server, plus narrow error-path checks on fake transports."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import cv2
import httpx
import numpy as np
import pytest

from rtvlm_widget import (
    AuthenticationError,
    BadResponse,
    ChatParams,
    Completion,
    ImagesNotSupported,
    ServerHTTPError,
    ServerUnreachable,
    VLMClient,
    normalize_base_url,
)
from rtvlm_widget._client import parse_models
from rtvlm_widget._errors import AnswerCutOff
from tests.aio import with_client
from tests.servers.llama import LlamaServer, free_port
from tests.servers.tiny_vlm import IMAGE_TOKENS
from tests.servers.trickle import TrickleServer

T = TypeVar("T")


run = with_client


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = color
    image[: size[1] // 2, : size[0] // 2] = (255 - color[0], color[1], 255 - color[2])
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(data)


# -- against the real llama-server ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_models_listed_with_or_without_v1(llama_server: LlamaServer, suffix: str) -> None:
    models = run(lambda c: c.list_models(), VLMClient(llama_server.base_url + suffix))
    assert models == ["tiny-vlm"]


def test_chat_sends_the_image_and_max_tokens(llama_server: LlamaServer) -> None:
    params = ChatParams(prompt="What do you see?", model="tiny-vlm", max_tokens=12, temperature=0)

    async def both(client: VLMClient) -> tuple[Completion, Completion]:
        with_image = await client.chat(params, [jpeg((30, 160, 220))])
        text_only = await client.chat(params, [])
        return with_image, text_only

    with_image, text_only = run(both, VLMClient(llama_server.base_url))
    assert with_image.usage is not None and text_only.usage is not None
    # The generated model turns every image into exactly IMAGE_TOKENS prompt tokens.
    assert with_image.usage.prompt_tokens - text_only.usage.prompt_tokens == IMAGE_TOKENS
    assert with_image.usage.completion_tokens == 12
    assert with_image.finish_reason == "length"
    assert with_image.text.strip()
    assert with_image.latency_s > 0


def test_same_frame_same_answer_at_temperature_zero(llama_server: LlamaServer) -> None:
    params = ChatParams(prompt="Describe it.", max_tokens=16, temperature=0)
    frame_a, frame_b = jpeg((200, 40, 40)), jpeg((40, 200, 90))

    async def answers(client: VLMClient) -> list[str]:
        return [(await client.chat(params, [f])).text for f in (frame_a, frame_a, frame_b)]

    first, again, other = run(answers, VLMClient(llama_server.base_url))
    assert first == again
    assert first != other


def test_server_without_mmproj_says_so(text_only_llama_server: LlamaServer) -> None:
    params = ChatParams(prompt="What do you see?", max_tokens=4)
    with pytest.raises(ImagesNotSupported) as info:
        run(lambda c: c.chat(params, [jpeg((0, 0, 255))]), VLMClient(text_only_llama_server.base_url))
    message = str(info.value)
    assert "--mmproj" in message
    assert text_only_llama_server.base_url + "/v1/chat/completions" in message
    assert info.value.status is not None and info.value.status >= 400


def test_nothing_listening_is_unreachable_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachable) as info:
        run(lambda c: c.list_models(), VLMClient(url))
    assert f"{url}/v1/models" in str(info.value)
    assert "running" in str(info.value)


# -- narrow checks: parsing and error mapping (fake transports) ---------------------------------


def test_parse_models_accepts_both_shapes() -> None:
    assert parse_models({"object": "list", "data": [{"id": "a"}, {"id": "b"}]}) == ["a", "b"]
    assert parse_models(["a", "b"]) == ["a", "b"]
    assert parse_models({"models": [{"name": "llava:7b", "model": "llava:7b"}]}) == ["llava:7b"]
    with pytest.raises(ValueError, match="list of models"):
        parse_models({"nope": 1})


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://localhost:11434/v1", "http://localhost:11434"),
        (" https://openrouter.ai/api/v1/ ", "https://openrouter.ai/api"),
    ],
)
def test_normalize_base_url(url: str, root: str) -> None:
    assert normalize_base_url(url) == root


@pytest.mark.parametrize("url", ["", "localhost:8080", "ftp://x", "http://"])
def test_bad_base_url_is_refused_with_an_example(url: str) -> None:
    with pytest.raises(ValueError, match="http://localhost:8080"):
        normalize_base_url(url)


def _fake(status: int, body: bytes, content_type: str = "application/json") -> VLMClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return VLMClient("http://fake.test:1/v1", api_key="sk-SECRET-123", transport=httpx.MockTransport(handler))


def test_401_names_the_key_setting_but_never_the_key() -> None:
    body = json.dumps({"error": {"message": "Invalid API Key", "type": "authentication_error"}})
    client = _fake(401, body.encode())
    assert "sk-SECRET" not in repr(client)
    with pytest.raises(AuthenticationError) as info:
        run(lambda c: c.list_models(), client)
    assert "OPENAI_API_KEY" in str(info.value) and "Invalid API Key" in str(info.value)
    assert "sk-SECRET" not in str(info.value)


def test_404_points_at_base_url() -> None:
    with pytest.raises(ServerHTTPError, match="check base_url") as info:
        run(lambda c: c.list_models(), _fake(404, b"Not Found", "text/plain"))
    assert info.value.status == 404


def test_body_without_choices_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="choices"):
        run(lambda c: c.chat(ChatParams(prompt="hi"), []), _fake(200, b'{"ok": true}'))


def test_non_json_body_is_a_bad_response() -> None:
    with pytest.raises(BadResponse):
        run(lambda c: c.chat(ChatParams(prompt="hi"), []), _fake(200, b"<html>", "text/html"))


def test_bare_list_of_models_through_the_client() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json=["llava:7b", "moondream"])

    client = VLMClient("http://fake.test:1", transport=httpx.MockTransport(handler))
    assert run(lambda c: c.list_models(), client) == ["llava:7b", "moondream"]


# -- streaming -------------------------------------------------------------------------------------


def test_streaming_delivers_text_piece_by_piece_with_usage(llama_server: LlamaServer) -> None:
    frame = jpeg((90, 30, 160))
    pieces: list[str] = []
    streamed_params = ChatParams(prompt="What is it?", max_tokens=10, temperature=0, stream=True)
    whole_params = replace(streamed_params, stream=False)

    async def both(client: VLMClient) -> tuple[Completion, Completion]:
        streamed = await client.chat(streamed_params, [frame], on_text=pieces.append)
        whole = await client.chat(whole_params, [frame])
        return streamed, whole

    streamed, whole = run(both, VLMClient(llama_server.base_url))
    assert streamed.text == whole.text
    # One callback per token, each a longer prefix of the final answer.
    assert len(pieces) == 10
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(pieces))
    assert pieces[-1] == streamed.text
    assert streamed.usage is not None and streamed.usage.completion_tokens == 10
    assert streamed.first_token_s is not None and 0 < streamed.first_token_s <= streamed.latency_s
    assert streamed.finish_reason == "length"


def _sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def _chunk(text: str) -> str:
    return json.dumps({"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})


def _streaming_fake(handler: Callable[[httpx.Request], httpx.Response]) -> VLMClient:
    return VLMClient("http://fake.test:1", transport=httpx.MockTransport(handler))


def test_error_event_in_the_stream_raises_with_the_servers_words() -> None:
    body = _sse(_chunk("Hel"), json.dumps({"error": {"message": "out of memory"}}))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with pytest.raises(ServerHTTPError, match="out of memory"):
        run(lambda c: c.chat(ChatParams(prompt="hi")), _streaming_fake(handler))


def test_stream_without_done_is_whole_only_with_a_finish_reason() -> None:
    """Some servers end a stream with a finish reason and no ``[DONE]``: a whole answer. Neither:
    the connection was closed mid-answer, and what came is a fragment (``AnswerCutOff``)."""
    finished = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    for body, whole in (
        (_sse(_chunk("a "), _chunk("cat"), json.dumps(finished)), True),
        (_sse(_chunk("a "), _chunk("cat")), False),
    ):

        def handler(request: httpx.Request, body: bytes = body) -> httpx.Response:
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

        if whole:
            answer = run(lambda c: c.chat(ChatParams(prompt="hi")), _streaming_fake(handler))
            assert answer.text == "a cat" and answer.finish_reason == "stop"
            continue
        with pytest.raises(AnswerCutOff, match="without \\[DONE\\] or a finish reason") as info:
            run(lambda c: c.chat(ChatParams(prompt="hi")), _streaming_fake(handler))
        assert info.value.partial_text == "a cat" and not info.value.permanent


def test_server_that_ignores_stream_answers_in_one_piece() -> None:
    payload = {"model": "m", "choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]}
    pieces: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(200, json=payload)

    answer = run(lambda c: c.chat(ChatParams(prompt="hi"), on_text=pieces.append), _streaming_fake(handler))
    assert answer.text == "whole" and pieces == ["whole"]


def test_server_refusing_stream_options_is_asked_again_without() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if "stream_options" in bodies[-1]:
            return httpx.Response(400, json={"error": {"message": "unknown field: stream_options"}})
        return httpx.Response(
            200, content=_sse(_chunk("ok"), "[DONE]"), headers={"content-type": "text/event-stream"}
        )

    client = _streaming_fake(handler)

    async def twice(c: VLMClient) -> list[str]:
        return [(await c.chat(ChatParams(prompt="hi"))).text for _ in range(2)]

    assert run(twice, client) == ["ok", "ok"]
    # Refused once, then left out for good.
    assert ["stream_options" in b for b in bodies] == [True, False, False]


def test_streamed_requests_reuse_one_connection() -> None:
    with TrickleServer(["a", " b"], gap_s=0.0) as server:

        async def three(client: VLMClient) -> list[str]:
            return [(await client.chat(ChatParams(prompt="hi"))).text for _ in range(3)]

        assert run(three, VLMClient(server.base_url)) == ["a b"] * 3
        assert server.streams_started == 3
        assert server.connections == 1
