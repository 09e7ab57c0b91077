"""Exporting a session to share: videos and animations decoded back with OpenCV, subtitles parsed.

Answers are built here with flat-colour JPEGs and capture times a known distance apart, so each
output frame's picture, boxes and caption can be checked where they must be.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from rtvlm_widget import Answer, Box, ChatParams, History, Point
from rtvlm_widget._annotate import PALETTE, pixel_box
from rtvlm_widget._export import (
    BAR,
    ERROR_TEXT,
    EVENT_INK,
    TEXT,
    ExportError,
    _drawable,
    _TextStyle,
    _wrap,
    export_captions,
    export_video,
)

Image = npt.NDArray[np.uint8]

WIDTH, HEIGHT = 320, 240
#: Capture times are epoch seconds; offsets from here are exact in binary, so frame edges are too.
T0 = 1_700_000_000.0
#: Far apart, so a picture's colour survives MPEG-4 compression recognisably.
COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def _jpeg(color: tuple[int, int, int], width: int = WIDTH, height: int = HEIGHT) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((height, width, 3), color, np.uint8))
    assert ok
    return encoded.tobytes()


def _answer(
    seq: int,
    offset: float,
    text: str = "",
    *,
    color: tuple[int, int, int] = (90, 90, 90),
    shapes: tuple[Box | Point, ...] = (),
    error: str | None = None,
    jpeg: bytes | None = None,
) -> Answer:
    return Answer(
        seq=seq,
        text=text or ("" if error else f"answer {seq}"),
        params=ChatParams("What?", model="m", max_tokens=20, temperature=0.0),
        latency_s=0.1,
        total_s=0.2,
        jpeg=_jpeg(color) if jpeg is None else jpeg,
        captured_at=T0 + offset,
        shapes=shapes,
        error=error,
    )


def _session() -> list[Answer]:
    """Four answers at 0, 0.5, 1.0 and 1.5 s, handed over out of order (export sorts them)."""
    answers = [_answer(n + 1, n * 0.5, color=c) for n, c in enumerate(COLORS)]
    return [answers[2], answers[0], answers[3], answers[1]]


def _video_frames(path: Path) -> tuple[list[Image], float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"OpenCV cannot open {path}"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.asarray(frame, np.uint8))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    capture.release()
    return frames, fps


def _animation(path: Path) -> tuple[list[Image], list[int]]:
    ok, animation = cv2.imreadanimation(str(path))
    assert ok, f"OpenCV cannot read {path} as an animation"
    frames = [np.asarray(f, np.uint8)[..., :3] for f in animation.frames]
    return frames, [int(d) for d in animation.durations]


def _near(pixel: Image, color: tuple[int, int, int], tolerance: int) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tolerance)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


# -- video ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_video_has_a_frame_per_tick_showing_the_frame_captured_by_then(tmp_path: Path, suffix: str) -> None:
    path = History(_session()).export_video(tmp_path / f"clip{suffix}", fps=10)
    assert path == tmp_path / f"clip{suffix}"
    frames, fps = _video_frames(path)
    # The span is 1.5 s; the last frame gets one frame's time: 16 frames, 1.6 s.
    assert fps == pytest.approx(10.0)
    assert len(frames) == 16
    assert 1.5 < len(frames) / fps <= 1.5 + 1 / fps
    assert frames[0].shape[:2][1] == WIDTH and frames[0].shape[0] > HEIGHT  # the caption bar below
    expected = [0] * 5 + [1] * 5 + [2] * 5 + [3]
    for index, frame in enumerate(frames):
        centre = frame[HEIGHT // 2, WIDTH // 2]
        assert _near(centre, COLORS[expected[index]], 12), (index, centre)
    assert _leftovers(tmp_path) == []


def test_default_fps_follows_how_fast_answers_came(tmp_path: Path) -> None:
    slow, _ = _video_frames(export_video(_session(), tmp_path / "slow.mp4"))
    assert len(slow) == 16  # 10 fps
    fast = [_answer(n + 1, n * 0.05, color=COLORS[n % 4]) for n in range(4)]
    frames, fps = _video_frames(export_video(fast, tmp_path / "fast.mp4"))
    # Answers 50 ms apart: 20 fps gives each its own frame.
    assert fps == pytest.approx(20.0) and len(frames) == 4
    assert [_near(f[120, 160], COLORS[n], 12) for n, f in enumerate(frames)] == [True] * 4


def test_boxes_are_drawn_as_annotated_draws_them(tmp_path: Path) -> None:
    box = Box(0.25, 0.25, 0.75, 0.75, "cup")
    answer = _answer(1, 0.0, color=(128, 128, 128), shapes=(box, Point(0.9, 0.1, "tip")))
    later = _answer(2, 1.0, color=(128, 128, 128))
    frames, durations = _animation(History([answer, later]).export_video(tmp_path / "boxes.png", fps=10))
    assert durations == [1000, 100]
    # Lossless APNG: the picture is exactly what Answer.annotated() gives.
    assert np.array_equal(frames[0][:HEIGHT], answer.annotated())
    left, top, right, bottom = pixel_box(box, WIDTH, HEIGHT)
    ink = tuple(int(v) for v in frames[0][(top + bottom) // 2, left])
    assert ink in PALETTE
    middle = (top + bottom) // 2
    for x in (left, right):
        assert tuple(frames[0][middle, x]) == ink
    for x in (left - 1, right + 1, (left + right) // 2):
        assert _near(frames[0][middle, x], (128, 128, 128), 2)
    assert tuple(frames[0][bottom, (left + right) // 2]) == ink
    assert _near(frames[0][bottom + 1, (left + right) // 2], (128, 128, 128), 2)
    # The next answer has no shapes: its picture is clean.
    assert _near(frames[1][middle, left], (128, 128, 128), 2)


def test_boxes_survive_video_compression(tmp_path: Path) -> None:
    box = Box(0.25, 0.25, 0.75, 0.75, "cup")
    answer = _answer(1, 0.0, color=(128, 128, 128), shapes=(box,), jpeg=_jpeg((128, 128, 128), 640, 480))
    frames, _ = _video_frames(export_video([answer], tmp_path / "box.mp4", fps=10))
    assert len(frames) == 1
    picture = frames[0][:480].astype(int)
    reference = answer.annotated().astype(int)
    assert np.abs(picture - reference).mean() < 4
    left, top, right, bottom = pixel_box(box, 640, 480)
    ink = np.array(reference[(top + bottom) // 2, left])

    def closer_to_ink(y: int, x: int) -> bool:
        pixel = picture[y, x]
        return bool(np.abs(pixel - ink).sum() < np.abs(pixel - 128).sum())

    for y in (200, 260, 300):
        assert closer_to_ink(y, left) and closer_to_ink(y, right)
        assert not closer_to_ink(y, left - 4) and not closer_to_ink(y, (left + right) // 2)


def test_the_caption_bar_shows_the_answer_or_the_error(tmp_path: Path) -> None:
    answers = [
        _answer(1, 0.0, "a red square on a table", color=(128, 128, 128)),
        _answer(2, 0.5, color=(128, 128, 128), error="server said 503"),
    ]
    frames, durations = _animation(export_video(answers, tmp_path / "caption.png", fps=10))
    assert durations == [500, 100]
    bar = frames[0][HEIGHT:]
    assert bar.shape[0] >= 40 and bar.shape[0] % 2 == 0
    assert (bar[-2:] == BAR).all()  # the bar's background under the text
    # Light text in the first bar, red text in the second; neither in the picture above.
    assert (np.abs(bar.astype(int) - TEXT).max(axis=2) < 40).sum() > 50
    error_bar = frames[1][HEIGHT:]
    assert (np.abs(error_bar.astype(int) - ERROR_TEXT).max(axis=2) < 40).sum() > 50
    assert not (np.abs(error_bar.astype(int) - TEXT).max(axis=2) < 40).any()
    assert _near(frames[0][HEIGHT - 1, 5], (128, 128, 128), 2)

    plain, _ = _animation(export_video(answers, tmp_path / "plain.png", fps=10, caption=False))
    assert plain[0].shape == (HEIGHT, WIDTH, 3)


def test_frames_of_other_sizes_are_fitted_and_centred(tmp_path: Path) -> None:
    answers = [
        _answer(1, 0.0, color=COLORS[0]),
        _answer(2, 0.5, color=COLORS[1], jpeg=_jpeg(COLORS[1], 160, 240)),
    ]
    frames, _ = _animation(export_video(answers, tmp_path / "sizes.png", fps=10, caption=False))
    assert frames[0].shape == frames[1].shape == (HEIGHT, WIDTH, 3)
    # Half as wide: 80 px of black either side.
    assert (frames[1][:, :80] == 0).all() and (frames[1][:, 240:] == 0).all()
    assert _near(frames[1][120, 160], COLORS[1], 3)


@pytest.mark.parametrize("suffix", [".gif", ".png", ".apng", ".webp"])
def test_animations_hold_each_picture_as_long_as_the_video(tmp_path: Path, suffix: str) -> None:
    frames, durations = _animation(History(_session()).export_video(tmp_path / f"clip{suffix}", fps=10))
    assert durations == [500, 500, 500, 100] and sum(durations) == 1600
    assert len(frames) == 4
    for frame, color in zip(frames, COLORS, strict=True):
        assert _near(frame[HEIGHT // 2, WIDTH // 2], color, 40)  # GIF has a 256-colour palette


def test_events_are_marked_while_they_are_due(tmp_path: Path) -> None:
    frames, durations = _animation(
        export_video(
            _session(), tmp_path / "events.png", fps=10, caption=False, events=[(T0 + 0.2, "entered")]
        )
    )
    # Shown for a second from 0.2 s: the runs split where the marker comes and goes.
    assert durations == [200, 300, 500, 200, 300, 100]

    def marked(frame: Image) -> bool:
        corner = frame[:40, WIDTH - 120 :].astype(int)
        return bool((np.abs(corner - EVENT_INK).max(axis=2) < 10).sum() > 100)

    assert [marked(f) for f in frames] == [False, True, True, True, False, False]


def test_long_answers_wrap_and_end_in_an_ellipsis() -> None:
    style = _TextStyle.for_width(WIDTH)
    lines = _wrap(" ".join(["word"] * 200), style, 3)
    assert len(lines) == 3 and lines[-1].endswith("...")
    assert all(style.width_of(line) <= style.room for line in lines)
    # A word wider than the bar is cut, not left to run off the edge.
    assert all(style.width_of(line) <= style.room for line in _wrap("x" * 300, style, 3))
    assert _wrap("short", style, 3) == ["short"]
    assert _drawable("café\n\t漢字  ok") == "cafe ?? ok"


# -- captions ------------------------------------------------------------------------------------
def _caption_session() -> list[Answer]:
    return [
        _answer(1, 0.0, "first"),
        _answer(2, 1.25, "second line\n\n  and more  "),
        _answer(3, 2.0, error="server said 503"),
        _answer(4, 3.0, "<b>bold</b> & --> done"),
        # Failed before any frame arrived: no time, left out.
        Answer(seq=5, text="", params=ChatParams("What?", max_tokens=20, temperature=0.0), latency_s=0.0,
               total_s=0.0, error="unreachable"),
    ]  # fmt: skip


_TIME = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"


def _ms(match: tuple[str, ...]) -> int:
    hours, minutes, seconds, millis = (int(x) for x in match)
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


def _parse(text: str, *, vtt: bool) -> list[tuple[int, int, list[str]]]:
    """(start ms, end ms, lines) per cue; checks the numbering (SRT) and the header (WebVTT)."""
    blocks = text.strip("\n").split("\n\n")
    if vtt:
        assert blocks.pop(0) == "WEBVTT"
    cues = []
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        if not vtt:
            assert lines.pop(0) == str(number)
        times = re.fullmatch(f"{_TIME} --> {_TIME}", lines[0])
        assert times, lines[0]
        separator = "." if vtt else ","
        assert lines[0].count(separator) == 2
        groups = times.groups()
        cues.append((_ms(groups[:4]), _ms(groups[4:]), lines[1:]))
    return cues


def test_srt_cues_run_from_each_capture_to_the_next(tmp_path: Path) -> None:
    path = History(_caption_session()).export_captions(tmp_path / "session.srt")
    cues = _parse(path.read_text(encoding="utf-8"), vtt=False)
    assert cues == [
        (0, 1250, ["first"]),
        # No blank line inside a cue (it would end it); the failure at 2 s ends this one.
        (1250, 2000, ["second line", "and more"]),
        # The last lasts 2 s; tags are made harmless (SRT has no escapes).
        (3000, 5000, ["\u2039b\u203abold\u2039/b\u203a & --\u203a done"]),
    ]


def test_vtt_cues_are_escaped_and_timed(tmp_path: Path) -> None:
    path = export_captions(_caption_session(), tmp_path / "session.VTT")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nfirst\n")
    cues = _parse(text, vtt=True)
    assert [c[:2] for c in cues] == [(0, 1250), (1250, 2000), (3000, 5000)]
    assert cues[2][2] == ["&lt;b&gt;bold&lt;/b&gt; &amp; --&gt; done"]
    assert _leftovers(tmp_path) == []


def test_long_sessions_get_hours_in_their_times(tmp_path: Path) -> None:
    answers = [_answer(1, 0.0, "start"), _answer(2, 3723.5, "an hour later")]
    cues = _parse(export_captions(answers, tmp_path / "long.srt").read_text(encoding="utf-8"), vtt=False)
    assert cues == [(0, 3_723_500, ["start"]), (3_723_500, 3_725_500, ["an hour later"])]
    assert "01:02:03,500 --> 01:02:05,500" in (tmp_path / "long.srt").read_text(encoding="utf-8")


# -- errors --------------------------------------------------------------------------------------
def test_an_unknown_extension_names_the_path_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"clip\.avi.*'\.avi'.*\.mp4, \.webm, \.gif") as caught:
        export_video(_session(), tmp_path / "clip.avi")
    assert caught.value.path == tmp_path / "clip.avi" and isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match=r"captions.*no extension.*\.srt, \.vtt"):
        History(_session()).export_captions(tmp_path / "captions")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_session_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"empty\.mp4.*no answers with a frame"):
        History([]).export_video(tmp_path / "empty.mp4")
    failures = [_caption_session()[-1]]
    with pytest.raises(ValueError, match=r"empty\.gif.*no answers with a frame"):
        export_video(failures, tmp_path / "empty.gif")
    with pytest.raises(ValueError, match=r"empty\.srt.*no answers to caption"):
        export_captions([*failures, _answer(1, 0.0, error="timeout")], tmp_path / "empty.srt")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_path_says_which_and_why(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    with pytest.raises(ExportError, match=r"not-a-folder/clip\.mp4.*cannot create the folder"):
        export_video(_session(), blocker / "clip.mp4")
    with pytest.raises(ExportError, match=r"not-a-folder/session\.vtt.*cannot create the folder"):
        export_captions(_session(), blocker / "session.vtt")
    folder = tmp_path / "taken.gif"
    folder.mkdir()
    with pytest.raises(ExportError, match=r"taken\.gif.*is a folder"):
        export_video(_session(), folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder", "taken.gif"]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps must be a positive number"):
        export_video(_session(), tmp_path / "x.mp4", fps=0)
    with pytest.raises(ValueError, match="cannot write 'XXXX' video"):
        export_video(_session(), tmp_path / "x.mp4", codec="XXXX")
    assert _leftovers(tmp_path) == [] and not (tmp_path / "x.mp4").exists()


def test_a_failed_export_keeps_the_file_that_was_there(tmp_path: Path) -> None:
    path = export_video(_session(), tmp_path / "keep.mp4", fps=10)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="codec"):
        export_video(_session(), path, codec="XXXX")
    assert path.read_bytes() == before
