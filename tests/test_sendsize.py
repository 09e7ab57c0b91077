"""Send size: image tokens per frame and the automatic choice, against real llama-servers.

Three projectors cover the three ways a frame's cost behaves: the LLaVA-style file (a fixed 16 tokens
whatever the size), the idefics3 file that tiles the image as sent (cost grows with the size), and
the idefics3 file that resizes every image to a fixed longest edge (only the aspect ratio counts).
A small scripted server covers what llama-server will not do on demand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest

from rtvlm_widget._chat import ChatParams
from rtvlm_widget._client import VLMClient
from rtvlm_widget._sendsize import (
    ORIGINAL,
    SEND_SIZES,
    NoUsage,
    ProbeResult,
    image_tokens,
    probe_send_sizes,
    resize_jpeg,
    scaled_size,
    text_tokens,
)
from tests.aio import run_async
from tests.servers import tiny_vlm
from tests.servers.cost import CostServer, Size
from tests.servers.llama import LlamaServer
from tests.servers.tiny_vlm import IMAGE_TOKENS, LONGEST_EDGE, idefics3_image_tokens

T = TypeVar("T")

PARAMS = ChatParams(prompt="What do you see?", max_tokens=50, temperature=0.7)


def jpeg(width: int, height: int) -> bytes:
    """A synthetic camera frame: a colour ramp with a disc, so resizing has something to average."""
    yy, xx = np.mgrid[0:height, 0:width]
    ramp = (xx * 255 // width).astype(np.uint8)
    image = np.stack([ramp, 255 - ramp, (yy * 255 // height).astype(np.uint8)], axis=-1)
    cv2.circle(image, (width // 3, height // 2), height // 4, (0, 200, 255), -1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return data.tobytes()


def decoded_size(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return int(image.shape[1]), int(image.shape[0])


def with_client(base_url: str, work: Callable[[VLMClient], Awaitable[T]]) -> T:
    async def go() -> T:
        client = VLMClient(base_url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return run_async(go())


def probe(base_url: str, frame: bytes) -> ProbeResult:
    return with_client(base_url, lambda c: probe_send_sizes(c, PARAMS, frame))


def sizes_and_tokens(result: ProbeResult) -> list[tuple[int, int | None]]:
    return [(row.size, row.image_tokens) for row in result.rows]


# -- sizes and resizing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "max_edge", "sent"),
    [
        ((640, 480), 256, (256, 192)),
        ((480, 640), 256, (192, 256)),
        ((1280, 720), 384, (384, 216)),
        # 166.5 rounds up, as JavaScript's Math.round does in the browser's capture.
        ((1000, 500), 333, (333, 167)),
        ((640, 480), 640, (640, 480)),
        ((640, 480), 1024, (640, 480)),
        ((640, 480), ORIGINAL, (640, 480)),
    ],
)
def test_scaled_size_matches_the_browser_and_never_upscales(
    frame: tuple[int, int], max_edge: int, sent: tuple[int, int]
) -> None:
    assert scaled_size(*frame, max_edge) == sent


def test_resize_jpeg_scales_down_and_never_up() -> None:
    frame = jpeg(640, 480)
    assert decoded_size(resize_jpeg(frame, 320)) == (320, 240)
    assert decoded_size(resize_jpeg(jpeg(480, 640), 256)) == (192, 256)
    # Nothing to shrink: the very same bytes, not a second lossy encode.
    for max_edge in (ORIGINAL, 640, 1024, 4096):
        assert resize_jpeg(frame, max_edge) is frame
    # Quality is the camera setting's fraction, and it shows in the bytes.
    assert len(resize_jpeg(frame, 320, 0.5)) < len(resize_jpeg(frame, 320, 0.95))


def test_resize_jpeg_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="quality"):
        resize_jpeg(jpeg(64, 48), 32, 85)
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        resize_jpeg(b"not a jpeg", 32)


# -- against real llama-servers -------------------------------------------------------------------


def test_text_tokens_leave_the_llava_image_tokens(llama_server: LlamaServer) -> None:
    frame = jpeg(640, 480)

    async def work(client: VLMClient) -> tuple[int, int | None]:
        text = await text_tokens(client, PARAMS)
        answer = await client.chat(PARAMS, [frame])
        return text, image_tokens(answer.usage, text)

    text, image = with_client(llama_server.base_url, work)
    assert image == IMAGE_TOKENS
    assert text > 10  # the chat template and the prompt, counted by the server


def test_fixed_cost_projector_picks_the_largest_size(llama_server: LlamaServer) -> None:
    result = probe(llama_server.base_url, jpeg(1280, 960))
    assert sizes_and_tokens(result) == [(size, IMAGE_TOKENS) for size in (*SEND_SIZES, ORIGINAL)]
    assert result.chosen == ORIGINAL
    assert all(row.error is None and row.latency_s is not None for row in result.rows)


@pytest.mark.parametrize(
    ("frame", "tokens", "chosen"),
    [
        # 512-px tiles, each side rounded to the nearest tile count, plus an overview tile.
        ((1280, 960), [134, 134, 134, 200, 333, 465], 512),
        ((1280, 720), [134, 134, 134, 200, 200, 266], 512),
        # 768 and 1024 are not smaller than this frame: they collapse into the original.
        ((640, 480), [134, 134, 134, 134], ORIGINAL),
    ],
)
def test_tiling_projector_costs_grow_with_the_size_sent(
    sliced_llama_server: LlamaServer, frame: tuple[int, int], tokens: list[int], chosen: int
) -> None:
    result = probe(sliced_llama_server.base_url, jpeg(*frame))
    assert [row.image_tokens for row in result.rows] == tokens
    for row in result.rows:
        assert (row.width, row.height) == scaled_size(*frame, row.size)
        assert row.image_tokens == idefics3_image_tokens(row.width, row.height)
    assert result.chosen == chosen
    assert result.chosen_row is not None and result.chosen_row.image_tokens == tokens[0]


def test_longest_edge_projector_follows_only_the_aspect_ratio(longest_edge_llama_server: LlamaServer) -> None:
    four_three = probe(longest_edge_llama_server.base_url, jpeg(1280, 960))
    two_one = probe(longest_edge_llama_server.base_url, jpeg(1280, 640))
    expected_43 = idefics3_image_tokens(4, 3, LONGEST_EDGE)
    expected_21 = idefics3_image_tokens(2, 1, LONGEST_EDGE)
    assert (expected_43, expected_21) == (333, 200)  # 2x2 tiles vs 2x1, each with an overview
    assert [tokens for _, tokens in sizes_and_tokens(four_three)] == [expected_43] * 6
    assert [tokens for _, tokens in sizes_and_tokens(two_one)] == [expected_21] * 6
    assert four_three.chosen == two_one.chosen == ORIGINAL


@pytest.fixture(scope="module")
def caching_llama_server(
    llama_server_binary: Path,
    idefics3_model: tiny_vlm.Idefics3Files,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LlamaServer]:
    """The tiling model on a server that caches prompts, as users' servers do by default."""
    log = tmp_path_factory.mktemp("llama-cache") / "llama-server.log"
    with LlamaServer(
        llama_server_binary,
        idefics3_model.text,
        idefics3_model.mmproj_sliced,
        extra_args=("--parallel", "1", "--cache-prompt"),
        log_path=log,
    ) as server:
        yield server


def test_probing_again_measures_the_same_on_a_caching_server(caching_llama_server: LlamaServer) -> None:
    frame = jpeg(1280, 720)
    first = probe(caching_llama_server.base_url, frame)
    second = probe(caching_llama_server.base_url, frame)
    # Cached prompt tokens still count in usage.prompt_tokens: the same costs, the same choice.
    assert sizes_and_tokens(first) == sizes_and_tokens(second)
    assert first.text_tokens == second.text_tokens
    assert first.chosen == second.chosen == 512
    assert all(row.error is None for row in (*first.rows, *second.rows))


# -- against a scripted server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cost_server() -> Iterator[CostServer]:
    # One server for the module: each stop waits out the server loop's 0.5 s poll.
    with CostServer(lambda size: None) as server:
        yield server


def scripted_probe(
    server: CostServer, cost: Callable[[Size], int | None], frame: bytes, params: ChatParams = PARAMS
) -> ProbeResult:
    server.cost = cost
    server.requests.clear()
    return with_client(server.base_url, lambda c: probe_send_sizes(c, params, frame))


def test_server_without_usage_leaves_the_choice_to_the_caller(cost_server: CostServer) -> None:
    result = scripted_probe(cost_server, lambda size: None, jpeg(640, 480))
    assert result.chosen is None
    assert result.reason == "server reports no usage; cannot measure tokens"
    assert result.text_tokens is None
    assert all(row.error is None and row.prompt_tokens is None for row in result.rows)
    with pytest.raises(NoUsage, match="no usage"):
        with_client(cost_server.base_url, lambda c: text_tokens(c, PARAMS))


def test_probe_asks_for_one_token_with_the_same_message(cost_server: CostServer) -> None:
    params = ChatParams(prompt="Count the cups.", model="some-model", max_tokens=80, stream=True)
    scripted_probe(cost_server, lambda size: 30 if size is None else 40, jpeg(640, 480), params)
    text_only, *with_image = cost_server.requests
    assert len(with_image) == 4  # 256, 384, 512 and the original
    for body in cost_server.requests:
        assert body["max_tokens"] == 1 and body["temperature"] == 0 and body["stream"] is False
        assert "stream_options" not in body and body["model"] == "some-model"
    for body in with_image:
        content = body["messages"][0]["content"]
        # Apart from the image part, the message is the text-only one (same template tokens).
        without_image = [part for part in content if part["type"] != "image_url"]
        assert [{**body["messages"][0], "content": without_image}] == text_only["messages"]


def test_every_probe_failing_falls_back_to_the_smallest_size(cost_server: CostServer) -> None:
    result = scripted_probe(cost_server, lambda size: 10 if size is None else -1, jpeg(1280, 960))
    assert result.chosen == SEND_SIZES[0]
    assert result.reason.startswith("every probe failed (")
    assert "scripted failure" in result.reason and "falling back to the smallest size" in result.reason
    assert all(row.error and row.latency_s is not None for row in result.rows)


def test_choice_skips_failures_and_takes_the_largest_of_equal_costs(cost_server: CostServer) -> None:
    # By the width sent: 256 fails, so 384 is the yardstick; 768 costs as little again.
    cost = {256: -1, 384: 110, 512: 130, 768: 110, 1024: 150, 1280: 170}
    result = scripted_probe(cost_server, lambda size: 10 if size is None else cost[size[0]], jpeg(1280, 960))
    assert [(row.size, row.image_tokens) for row in result.rows] == [
        (256, None),
        (384, 100),
        (512, 120),
        (768, 100),
        (1024, 140),
        (ORIGINAL, 160),
    ]
    assert result.chosen == 768
    assert result.reason == (
        "768 px (768×576) is the largest size that costs no more than the smallest (100 image tokens); "
        "512 px (512×384) costs 20 more"
    )


def test_result_reads_as_a_table_and_as_dicts(cost_server: CostServer) -> None:
    result = scripted_probe(cost_server, lambda size: 10 if size is None else 26, jpeg(800, 600))
    lines = str(result).splitlines()
    assert lines[0].split() == ["send", "size", "sent", "prompt", "tok", "image", "tok", "latency"]
    assert lines[1].split()[:4] == ["256", "256×192", "26", "16"]
    assert lines[-3].startswith("original") and lines[-3].endswith("<- chosen")
    assert lines[-2].split() == ["text", "only", "10"]
    assert lines[-1] == result.reason
    assert (
        result.reason
        == "no size costs more than the smallest (16 image tokens), so the largest: original (800×600)"
    )
    dicts = result.to_dicts()
    assert [d["size"] for d in dicts] == [256, 384, 512, 768, ORIGINAL]
    assert [d["chosen"] for d in dicts] == [False] * 4 + [True]
    assert set(dicts[0]) == {
        "size", "width", "height", "prompt_tokens", "image_tokens", "latency_s", "error", "chosen"
    }  # fmt: skip
