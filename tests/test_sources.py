"""Kernel-side sources with real OpenCV decoding: generated video files, image folders, arrays, a local
MJPEG-over-HTTP stream, and the controller against the real llama-server."""

from __future__ import annotations

import asyncio
import functools
import http.server
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rtvlm_widget import (
    Answer,
    CameraUnavailable,
    ChatParams,
    Frame,
    KernelSource,
    RealtimeVLM,
    SourceEnded,
    SourceError,
    VLMClient,
    open_source,
)
from rtvlm_widget._controller import Controller
from rtvlm_widget._playback import Playback
from rtvlm_widget._readers import VideoFile
from rtvlm_widget._widget import PREVIEW_EVERY_S, CameraView
from tests.aio import run_async
from tests.servers.llama import LlamaServer
from tests.video_files import MjpegServer, frame_image, index_of, write_video


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """30 frames at 10 fps (3 s), 160x120."""
    return write_video(tmp_path / "clip.avi", 30, 10)


def _indices(source: KernelSource, count: int, **capture: Any) -> list[int]:
    async def go() -> list[int]:
        return [index_of((await source.capture(**capture)).jpeg) for _ in range(count)]

    return run_async(go())


class RecordingView(CameraView):
    """A real CameraView (no page attached) that also keeps what it sends to the page."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.sent.append((content, list(buffers or [])))
        super().send(content, buffers)

    def previews(self) -> list[tuple[dict[str, Any], list[bytes]]]:
        return [(c, b) for c, b in self.sent if c.get("kind") == "preview"]


# -- files ----------------------------------------------------------------------------------------
def test_file_as_fast_as_possible_gives_every_frame_in_order_then_loops(clip: Path) -> None:
    source = open_source(clip, realtime=False)
    try:
        assert _indices(source, 33) == [*range(30), 0, 1, 2]
        assert not source.live and source.label == "video clip.avi"
    finally:
        source.close()


def test_file_without_loop_ends_with_a_clear_error_and_rewinds(clip: Path) -> None:
    source = open_source(clip, realtime=False, loop=False)
    try:
        assert _indices(source, 30) == list(range(30))
        with pytest.raises(SourceEnded, match=r"video clip\.avi played to its end .*loop=False"):
            _indices(source, 1)
        with pytest.raises(CameraUnavailable):  # the controller's kind of error: it records it
            _indices(source, 1)
        source.rewind()
        assert _indices(source, 2) == [0, 1]
    finally:
        source.close()


def test_file_in_real_time_follows_the_clock_and_skips_frames(clip: Path) -> None:
    source = open_source(clip)  # realtime is the default: 10 fps here

    async def go() -> tuple[int, int, float, float, float, float]:
        before_first = time.monotonic()
        first = index_of((await source.capture()).jpeg)
        after_first = time.monotonic()
        await asyncio.sleep(0.75)
        before = time.monotonic()
        later = index_of((await source.capture()).jpeg)
        after = time.monotonic()
        return first, later, before_first, after_first, before, after

    try:
        first, later, before_first, after_first, before, after = run_async(go())
    finally:
        source.close()
    assert first == 0
    # The clock started during the first capture: the frame due is known within these bounds.
    assert int((before - after_first) * 10) <= later <= int((after - before_first) * 10)
    assert later >= 7  # frames 1.. were skipped, not queued


def test_real_time_playback_repeats_the_due_frame_seeks_far_and_loops_on_the_clock(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.avi", 90, 30)
    now = [100.0]
    capture = cv2.VideoCapture(str(video))
    playback = Playback(
        VideoFile(capture, "long"), "long", realtime=True, loop=True, fps=30, clock=lambda: now[0]
    )
    try:
        seen = []
        for at in (0.0, 0.01, 0.5, 2.9, 3.5, 6.2):
            now[0] = 100.0 + at
            seen.append((index_of(playback.next()), playback.loops))
    finally:
        playback.close()
    assert seen == [
        (0, 0),
        (0, 0),  # asked again within the same frame's 33 ms: still frame 0
        (15, 0),  # a short hop decodes through
        (87, 0),  # a long one seeks
        (15, 1),  # 3.5 s into a 3 s clip: frame 15 of the second pass
        (6, 2),
    ]


def test_max_edge_downscales_with_the_aspect_kept_and_frames_are_complete(clip: Path) -> None:
    view = RecordingView()
    view.jpeg_quality = 0.9
    source = open_source(clip, view=view, realtime=False)

    async def go() -> tuple[Frame, Frame, Frame]:
        return (
            await source.capture(max_edge=80),
            await source.capture(max_edge=0),
            await source.capture(max_edge=1000),
        )

    try:
        small, full, larger = run_async(go())
    finally:
        source.close()
    assert (small.width, small.height) == (80, 60)
    decoded = cv2.imdecode(np.frombuffer(small.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (60, 80, 3)
    assert (full.width, full.height) == (larger.width, larger.height) == (160, 120)
    assert [f.seq for f in (small, full, larger)] == [1, 2, 3]
    assert all(f.jpeg.startswith(b"\xff\xd8\xff") for f in (small, full, larger))
    assert abs(small.captured_at_ms - time.time() * 1000) < 60_000
    assert small.encode_ms > 0 and small.draw_ms > 0 and small.roundtrip_s > 0
    assert source.frames_sent == 3


# -- folders and arrays -----------------------------------------------------------------------
def test_folder_plays_images_in_natural_order_and_skips_unreadable_ones(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for index, name in ((1, "img1.png"), (2, "img2.jpg"), (3, "img10.png"), (4, "IMG11.WEBP")):
        assert cv2.imwrite(str(folder / name), frame_image(index))
    (folder / "img5.png").write_bytes(b"not an image at all")  # fails the header check
    (folder / "img6.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # fails only decoding
    (folder / "notes.txt").write_text("ignored")
    cv2.imwrite(str(folder / "gray.bmp"), np.full((120, 160), 200, np.uint8))
    source = open_source(folder, realtime=False)
    try:
        pictures = run_async(_capture_n(source, 6))
        # Natural, case-insensitive name order: gray, img1, img2, (img5, img6 skipped), img10, IMG11.
        assert [index_of(p) for p in pictures[1:5]] == [1, 2, 3, 4]
        for gray in (pictures[0], pictures[5]):  # a grayscale file comes out as BGR; then it loops
            decoded = cv2.imdecode(np.frombuffer(gray, np.uint8), cv2.IMREAD_COLOR)
            assert decoded is not None and np.abs(decoded.astype(int) - 200).max() <= 3
        assert source.skipped == 2
        assert source.label == "folder shots (6 images)"  # img6 passed the header check
    finally:
        source.close()


async def _capture_n(source: KernelSource, count: int) -> list[bytes]:
    return [(await source.capture()).jpeg for _ in range(count)]


def test_folder_problems_have_clear_messages(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(SourceError, match=r"folder .*empty has no image files \(\.jpg .*\.webp\)"):
        open_source(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(SourceError, match=r"none of the 1 image files in .*broken can be read"):
        open_source(broken)


def test_arrays_play_in_order_grayscale_included(tmp_path: Path) -> None:
    gray = np.full((120, 160), 128, np.uint8)
    frames = [frame_image(7), gray, frame_image(9)]
    source = open_source(frames, realtime=False)
    try:
        got = run_async(_capture_n(source, 4))
        assert index_of(got[0]) == 7 and index_of(got[2]) == 9 and index_of(got[3]) == 7
        middle = cv2.imdecode(np.frombuffer(got[1], np.uint8), cv2.IMREAD_UNCHANGED)
        assert middle is not None
        assert middle.ndim == 3 or middle.ndim == 2  # a gray JPEG may decode either way
        latest = source.latest_array()
        assert latest is not None and latest.shape == (120, 160, 3) and index_of(latest) == 7
        assert source.label == "3 arrays"
    finally:
        source.close()
    stacked = open_source(np.stack([frame_image(1), frame_image(2)]), realtime=False)
    try:
        assert _indices(stacked, 2) == [1, 2]
    finally:
        stacked.close()


def test_arrays_with_a_real_time_rate_play_like_a_video() -> None:
    source = open_source([frame_image(i) for i in range(50)], fps=20)

    async def go() -> tuple[int, int]:
        first = index_of((await source.capture()).jpeg)
        await asyncio.sleep(0.5)
        return first, index_of((await source.capture()).jpeg)

    try:
        first, later = run_async(go())
    finally:
        source.close()
    assert first == 0 and 9 <= later <= 30


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], r"the list of frames is empty"),
        (
            [frame_image(1), np.zeros((4, 4, 3), np.float64)],
            r"item 1 of the list: expected an HxWx3 uint8 BGR array .* got dtype float64 with shape "
            r"\(4, 4, 3\) \(scale floats",
        ),
        ([np.zeros((4, 4, 4), np.uint8)], r"item 0 of the list: .* got shape \(4, 4, 4\) \(drop alpha"),
        ([np.zeros((0, 4, 3), np.uint8)], r"got shape \(0, 4, 3\)"),
        (["a.png"], r"item 0 of the list: expected .* got str"),
    ],
)
def test_bad_arrays_are_refused_with_the_reason(spec: object, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(spec)


# -- bad sources ----------------------------------------------------------------------------------
def test_unopenable_sources_say_what_and_why(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no such video file or image folder: .*missing\.mp4"):
        open_source(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(SourceError, match=r"OpenCV could not open .*notes\.mp4 as a video"):
        open_source(text)
    with pytest.raises(SourceError) as refused:
        open_source("rtsp://alice:s3cret@127.0.0.1:1/live")
    message = str(refused.value)
    assert "s3cret" not in message and "alice" not in message
    assert "stream rtsp://***@127.0.0.1:1/live" in message and "reachable" in message
    with pytest.raises(SourceError, match=r"could not open camera 57 on the kernel's machine"):
        open_source(57)
    for wrong in (True, 1.5, {"path": "x"}):
        with pytest.raises(TypeError, match=r"source must be a video file or folder path"):
            open_source(wrong)


# -- live streams ---------------------------------------------------------------------------------
def test_http_mjpeg_stream_gives_the_newest_frame_never_a_queued_one() -> None:
    with MjpegServer(fps=20) as server:
        source = open_source(server.url)
        try:
            assert source.live and source.label == f"stream {server.url}"

            async def go() -> tuple[list[int], int, int, int]:
                quick = [index_of((await source.capture()).jpeg) for _ in range(3)]
                await asyncio.sleep(1.0)  # 20 frames go by: a queue would hand out the oldest
                newest = server.sent
                late = index_of((await source.capture()).jpeg)
                return quick, newest, late, server.sent

            quick, newest, late, after = run_async(go())
            latest = source.latest_array()
        finally:
            source.close()
    assert quick == sorted(set(quick))  # each capture a new frame
    assert newest - 2 <= late <= after + 1, (newest, late, after)
    assert latest is not None and latest.shape == (120, 160, 3)


def test_a_silent_stream_fails_the_capture_without_blocking_the_event_loop() -> None:
    with MjpegServer(fps=20) as server:
        source = open_source(server.url)
        try:

            async def go() -> tuple[str, int]:
                await source.capture()
                await asyncio.sleep(0.3)  # a few more frames come
                server.paused.set()
                await asyncio.sleep(0.3)
                # The newest frame was not handed out yet: it comes at once, and only once.
                assert index_of((await source.capture(timeout=1.0)).jpeg) == server.sent % 100
                ticks = 0

                async def tick() -> None:
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1

                ticker = asyncio.create_task(tick())
                try:
                    await source.capture(timeout=1.0)
                except SourceError as exc:
                    return str(exc), ticks
                finally:
                    ticker.cancel()
                return "no error", ticks

            message, ticks = run_async(go())
        finally:
            source.close()
    assert message.startswith(f"no frame from stream {server.url} within 1 s")
    assert ticks >= 40  # the loop ran while the capture waited in a thread


def test_close_stops_the_reader_thread() -> None:
    with MjpegServer(fps=20) as server:
        source = open_source(server.url)
        run_async(_capture_n(source, 1))
        source.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            t.name.startswith("rtvlm-reader") for t in threading.enumerate()
        ):
            time.sleep(0.05)
        assert not [t.name for t in threading.enumerate() if t.name.startswith("rtvlm-reader")]
        with pytest.raises(SourceError, match="is closed"):
            run_async(_capture_n(source, 1))


def test_http_url_of_a_video_file_plays_like_a_file(clip: Path) -> None:
    handler = functools.partial(_QuietFiles, directory=str(clip.parent))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://viewer:pw@127.0.0.1:{server.server_address[1]}/clip.avi"
        source = open_source(url, realtime=False)
        try:
            assert (
                not source.live
                and source.label == f"video http://***@127.0.0.1:{server.server_address[1]}/clip.avi"
            )
            assert _indices(source, 32) == [*range(30), 0, 1]
        finally:
            source.close()
            server.shutdown()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# -- the view -------------------------------------------------------------------------------------
def test_the_view_shows_the_source_its_frames_and_its_end(clip: Path) -> None:
    view = RecordingView()
    source = open_source([frame_image(3), frame_image(4)], view=view, realtime=False, loop=False)
    assert view.source == "2 arrays"
    assert (view.camera_state, view.video_width, view.video_height) == ("live", 160, 120)
    assert view.camera_message == "kernel source: 2 arrays"

    async def go() -> None:
        await source.capture()
        await asyncio.sleep(PREVIEW_EVERY_S * 2)
        await source.capture(max_edge=80)
        await asyncio.sleep(PREVIEW_EVERY_S * 2)
        with pytest.raises(SourceEnded):
            await source.capture()

    run_async(go())
    previews = view.previews()
    assert [(c["width"], c["height"]) for c, _ in previews] == [(160, 120), (80, 60)]
    assert [index_of(b[0]) for _, b in previews] == [3, 4]
    assert view.camera_state == "ended" and "played to its end" in view.camera_message
    source.rewind()
    assert view.camera_state == "live"
    view.close()  # closing the view (the panel's close()) releases the source
    with pytest.raises(SourceError, match="is closed"):
        run_async(_capture_n(source, 1))


def test_previews_are_throttled_and_the_newest_is_shown_last() -> None:
    view = RecordingView()
    source = open_source([frame_image(i) for i in range(20)], view=view, realtime=False)

    async def go() -> None:
        for _ in range(20):
            await source.capture()
        await asyncio.sleep(PREVIEW_EVERY_S * 3)

    started = time.monotonic()
    run_async(go())
    elapsed = time.monotonic() - started
    source.close()
    shown = [index_of(b[0]) for _, b in view.previews()]
    assert shown[0] == 0 and shown[-1] == 19  # the last frame handed out is the one left on screen
    assert len(shown) <= 2 + elapsed / PREVIEW_EVERY_S
    assert shown == sorted(shown)


# -- the controller against the real server -------------------------------------------------------
def _params() -> ChatParams:
    return ChatParams(prompt="What is this?", max_tokens=5, temperature=0)


def test_controller_asks_about_video_frames(llama_server: LlamaServer, clip: Path) -> None:
    source = open_source(clip, realtime=False)

    async def go() -> list[Answer]:
        controller = Controller(source, VLMClient(llama_server.base_url), _params(), interval_s=0)
        controller.prefetch = False  # as RealtimeVLM sets it for kernel sources
        try:
            for _ in range(2):
                await controller.ask()
            controller.start()
            while len(controller.history) < 6:
                await asyncio.sleep(0.01)
            controller.stop()
            return list(controller.history)
        finally:
            await controller.aclose()

    try:
        answers = run_async(asyncio.wait_for(go(), 120))
    finally:
        source.close()
    assert all(a.ok and a.text and a.model == "tiny-vlm" for a in answers), [a.error for a in answers]
    frames = [index_of(a.jpeg) for a in answers]
    # As fast as the server answers: consecutive frames, none repeated, none skipped.
    assert frames == list(range(len(frames))), frames
    assert answers[0].frame_width == 160 and answers[0].timing is not None


def test_controller_records_the_end_of_a_file_as_an_error(llama_server: LlamaServer) -> None:
    source = open_source([frame_image(1), frame_image(2)], realtime=False, loop=False)

    async def go() -> list[Answer]:
        controller = Controller(source, VLMClient(llama_server.base_url), _params())
        try:
            return [await controller.ask() for _ in range(3)]
        finally:
            await controller.aclose()

    try:
        first, second, third = run_async(go())
    finally:
        source.close()
    assert first.ok and second.ok
    assert [index_of(first.jpeg), index_of(second.jpeg)] == [1, 2]
    assert third.error is not None and "played to its end" in third.error


def test_live_mode_stops_when_a_file_ends(llama_server: LlamaServer) -> None:
    source = open_source([frame_image(1), frame_image(2)], realtime=False, loop=False)
    statuses: list[tuple[str, str]] = []

    async def go() -> list[Answer]:
        controller = Controller(source, VLMClient(llama_server.base_url), _params(), interval_s=0.0)
        controller.prefetch = False  # as RealtimeVLM sets it for kernel sources
        controller.on_status(lambda state, message: statuses.append((state, message)))
        try:
            controller.start()
            for _ in range(200):
                await asyncio.sleep(0.05)
                if not controller.live:
                    break
            return list(controller.history)
        finally:
            await controller.aclose()

    try:
        answers = run_async(go())
    finally:
        source.close()
    # Two answers, one record of the end, then no retries: live mode stopped by itself.
    assert [a.ok for a in answers] == [True, True, False], [a.error for a in answers]
    assert statuses[-1] == ("idle", "stopped")


# -- RealtimeVLM ----------------------------------------------------------------------------------
def test_realtime_vlm_reads_frames_from_the_source_it_is_given(clip: Path, tmp_path: Path) -> None:
    app = RealtimeVLM(base_url="http://127.0.0.1:9", source=clip, realtime=False)
    source = app._source
    assert isinstance(source, KernelSource)
    assert app.view.source == "video clip.avi" and app.view.camera_state == "live"
    assert _indices(source, 2) == [0, 1]
    app.close()  # closing the panel releases the source
    with pytest.raises(SourceError, match="is closed"):
        _indices(source, 1)
    assert isinstance(RealtimeVLM(base_url="http://127.0.0.1:9")._source, CameraView)
    with pytest.raises(SourceError, match="no such video file or image folder"):
        RealtimeVLM(base_url="http://127.0.0.1:9", source=tmp_path / "nope.mp4")
