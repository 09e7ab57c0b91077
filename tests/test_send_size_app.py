"""Send size through the whole app (kernel-side source, no browser): auto probes once per server and
model and sends the size it chose; answers carry their image tokens per frame."""

from __future__ import annotations

import numpy as np

from rtvlm_widget import RealtimeVLM
from tests.servers.llama import LlamaServer
from tests.servers.tiny_vlm import IMAGE_TOKENS


def _frames(width: int, height: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(3)]


def test_auto_sends_the_largest_size_that_costs_no_more_and_reports_image_tokens(
    sliced_llama_server: LlamaServer,
) -> None:
    # 1280x960: the tiling projector charges 134 image tokens up to 640 px, 465 as it is.
    app = RealtimeVLM(base_url=sliced_llama_server.base_url, source=_frames(1280, 960), max_tokens=2)
    try:
        assert app.send_size == "auto"
        answer = app.ask()
        probe = app._controller.send_size.probe
        assert probe is not None and probe.chosen == 512, probe
        assert (answer.frame_width, answer.frame_height) == (512, 384)
        assert answer.image_tokens == 134
        by_size = {row.size: row.image_tokens for row in probe.rows}
        assert by_size[256] == by_size[512] == 134 and by_size[0] == 465
        # What the panel shows (tests/browser/test_send_size.py checks the panel itself).
        assert app._controller.send_size.describe() == "auto → 512 px, 134 image tokens"
        assert "465" in probe.table()

        # A fixed size is used as set, and the table in Python is the same probe.
        app.send_size = "original"
        assert app._controller.send_size.mode == 0
        full = app.ask()
        assert (full.frame_width, full.frame_height) == (1280, 960) and full.image_tokens == 465
        again = app.probe_send_sizes()
        assert again.chosen == 512 and "465" in again.table()
        assert app.history.to_pandas()["image_tokens"].tolist() == [134, 465]
    finally:
        app.close()


def test_fixed_cost_models_get_the_largest_size_and_their_known_token_count(
    llama_server: LlamaServer,
) -> None:
    app = RealtimeVLM(base_url=llama_server.base_url, source=_frames(1280, 960), max_tokens=2)
    try:
        answer = app.ask()
        assert (answer.frame_width, answer.frame_height) == (1280, 960)
        assert answer.image_tokens == IMAGE_TOKENS
        app.send_size = 256
        small = app.ask()
        assert (small.frame_width, small.frame_height) == (256, 192) and small.image_tokens == IMAGE_TOKENS
    finally:
        app.close()
