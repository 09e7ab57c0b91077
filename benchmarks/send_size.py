"""Issue 9 benchmark: what the send size costs end to end, auto against the camera's resolution.

Run from the repository root (starts its own llama-servers; ~1 minute on 2 cores)::

    .venv/bin/python -m benchmarks.send_size          # --rounds N, --width/--height, --help

For each test model (tests/servers/tiny_vlm.py: the LLaVA-style one with a fixed 16 image tokens,
the idefics3 one that tiles images as sent, the idefics3 one that resizes to a fixed longest
edge), ``RealtimeVLM(source=<frames>, send_size=...)`` asks ``rounds`` times with ``ask()`` —
the whole kernel path: frame taken from the source, downscaled and JPEG-encoded, request, whole
answer — once with ``send_size="auto"`` (the probe runs first and is not timed) and once with
``"original"`` (the frame as the camera gives it), alternating A B A B. Printed: the size each
sent, image tokens per frame, median and p90 of ``total_s`` and the auto/original ratio.
``--model``/``--mmproj`` add a row for real GGUF files (e.g. SmolVLM-500M) when you have them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rtvlm_widget import RealtimeVLM
from tests.servers import llama_build, tiny_vlm
from tests.servers.llama import LlamaServer

RESULTS = Path(__file__).resolve().parent / "results"


def _frames(width: int, height: int) -> list[np.ndarray]:
    """Textured frames, so the JPEGs weigh what a camera's do."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
    return [np.roll(big, shift, axis=1) for shift in range(0, 40, 8)]


def _measure(base_url: str, frames: list[np.ndarray], rounds: int) -> dict[str, dict[str, Any]]:
    apps = {
        mode: RealtimeVLM(base_url=base_url, source=frames, realtime=False, max_tokens=8, send_size=mode)
        for mode in ("auto", "original")
    }
    times: dict[str, list[float]] = {mode: [] for mode in apps}
    last: dict[str, Any] = {}
    try:
        for app in apps.values():
            app.ask()  # warm-up; for auto, the probe runs here
        for _ in range(rounds):
            for mode, app in apps.items():
                answer = app.ask()
                times[mode].append(answer.total_s)
                last[mode] = answer
    finally:
        for app in apps.values():
            app.close()
    out = {}
    for mode, values in times.items():
        values.sort()
        answer = last[mode]
        out[mode] = {
            "size": f"{answer.frame_width}x{answer.frame_height}",
            "image_tokens": answer.image_tokens,
            "median_ms": statistics.median(values) * 1000,
            "p90_ms": values[int(0.9 * (len(values) - 1))] * 1000,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=960)
    parser.add_argument("--model", type=Path, help="a real text GGUF (with --mmproj) for an extra row")
    parser.add_argument("--mmproj", type=Path)
    args = parser.parse_args(argv)

    binary = llama_build.build()
    work = Path(tempfile.mkdtemp(prefix="rtvlm-sendsize-"))
    llava = tiny_vlm.generate(work / "llava")
    idefics = tiny_vlm.generate_idefics3(work / "idefics3")
    models: list[tuple[str, Path, Path]] = [
        ("LLaVA-style (fixed tokens)", *llava),
        ("idefics3, tiles as sent", idefics.text, idefics.mmproj_sliced),
        ("idefics3, fixed longest edge", idefics.text, idefics.mmproj_longest_edge),
    ]
    if args.model and args.mmproj:
        models.append((args.model.name, args.model, args.mmproj))
    frames = _frames(args.width, args.height)
    results: dict[str, Any] = {}
    for name, text, mmproj in models:
        with LlamaServer(binary, text, mmproj, extra_args=("--parallel", "1")) as server:
            results[name] = _measure(server.base_url, frames, args.rounds)

    print(f"\nsend size, camera {args.width}x{args.height}, {args.rounds} rounds each, ask() total_s\n")
    print("| model | auto sends | image tok | median ms | p90 ms | original sends | image tok | median ms "
          "| p90 ms | auto / original |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        a, o = row["auto"], row["original"]
        print(
            f"| {name} | {a['size']} | {a['image_tokens']} | {a['median_ms']:.1f} | {a['p90_ms']:.1f} "
            f"| {o['size']} | {o['image_tokens']} | {o['median_ms']:.1f} | {o['p90_ms']:.1f} "
            f"| {a['median_ms'] / o['median_ms']:.2f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "send_size.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
