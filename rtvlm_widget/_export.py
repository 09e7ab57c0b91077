"""A recorded session as something to share: a video of the frames the model saw, or subtitles.

The video shows each answer's frame from the moment it was captured (``Answer.captured_at``), with
the answer in a caption bar under the picture and its boxes and points drawn by
:func:`~rtvlm_widget._annotate.annotate`, so a session plays at the pace it was recorded (a
kernel-side video in real time keeps its own timing; pauses stay pauses). MP4 and WebM go through
OpenCV's ``VideoWriter``; GIF, APNG and animated WebP through ``cv2.imwriteanimation`` (OpenCV ≥ 4.11).

Timing, at ``fps`` frames a second from the first frame's capture time ``t0``: output frame ``k``
covers ``[k/fps, (k+1)/fps)`` and shows the newest frame captured before its end. So the video
lasts the session's span plus at most one frame, and each answer appears at most one frame early.
Animations hold each picture for as long as the video would (one image per change, with its
duration), which keeps them small.

Failed answers: when the frame had been sent, it is shown with the error in the caption bar (the
viewer sees what happened); failures before a frame arrived have no picture or time and are left
out. The subtitles carry answered frames only: a failure ends the previous cue and shows none.

OpenCV is imported when exporting, as in ``_annotate`` (its import is slow).
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import secrets
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._annotate import BGR, Image, annotate
from ._errors import RtvlmError
from ._records import Answer

__all__ = [
    "ANIMATION_FORMATS",
    "CAPTION_FORMATS",
    "VIDEO_FORMATS",
    "Event",
    "ExportError",
    "export_captions",
    "export_video",
]

#: Video containers, with the codec (FourCC) used unless one is given. 'mp4v' (MPEG-4 part 2) is
#: in every OpenCV build but browsers do not play it; WebM (VP8) they do. H.264 ('avc1') needs an
#: OpenCV built with an H.264 encoder: pass ``codec="avc1"`` where there is one.
VIDEO_FORMATS: dict[str, str] = {".mp4": "mp4v", ".webm": "VP80"}
#: Animated images (``.png`` is written as APNG, which READMEs on GitHub play).
ANIMATION_FORMATS = (".gif", ".png", ".apng", ".webp")
CAPTION_FORMATS = (".srt", ".vtt")

#: Frames a second when none is given, raised (up to MAX_AUTO_FPS) for sessions answered faster.
DEFAULT_FPS = 10.0
MAX_AUTO_FPS = 30.0
#: How long the last subtitle stays: there is no next answer to end it.
LAST_CUE_S = 2.0
#: How long an event's marker stays on screen.
EVENT_S = 1.0
#: Lines of answer text the caption bar holds; longer answers end in "...".
CAPTION_LINES = 3

#: A marker for the video: (epoch seconds, same clock as ``Answer.captured_at``; label). The hook
#: for watched conditions' events, drawn as a tag in the picture's top-right corner.
Event = tuple[float, str]

BAR: BGR = (32, 32, 32)
TEXT: BGR = (240, 240, 240)
ERROR_TEXT: BGR = (90, 90, 255)
EVENT_INK: BGR = (0, 200, 255)
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX, without importing cv2 with this module
# Capture times within a thousandth of a frame before a frame's start count as on it: epoch
# seconds near 1.7e9 only hold about 0.2 µs, so exact boundaries come out a hair early.
_EPS = 1e-3


class ExportError(RtvlmError, ValueError):
    """An export that cannot be written: the message names the path and says why (``path``)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot export to {path}: {reason}")
        self.path = path


@dataclass(frozen=True)
class _Shot:
    """An answer placed on the timeline: seconds since the first frame, and the answer."""

    at: float
    answer: Answer


def _capture_time(answer: Answer) -> float | None:
    """Epoch seconds when the answer's frame was grabbed; None for failures without a frame."""
    if answer.captured_at > 0:
        return answer.captured_at
    if answer.jpeg:
        # Records made without a capture time: the answer's end less its whole round trip.
        return answer.created_at - answer.total_s
    return None


def _timeline(answers: Iterable[Answer], *, frames_only: bool) -> tuple[float, list[_Shot]]:
    """The answers with a capture time, oldest frame first, and the first capture time."""
    timed = [(t, a) for a in answers if (t := _capture_time(a)) is not None and (a.jpeg or not frames_only)]
    if not timed:
        return 0.0, []
    # Stable: answers about the same instant keep their order (the later one wins the screen).
    timed.sort(key=lambda item: item[0])
    start = timed[0][0]
    return start, [_Shot(t - start, a) for t, a in timed]


# -- paths ---------------------------------------------------------------------------------------
def _check_suffix(path: Path, supported: Sequence[str], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in supported:
        named = f"extension {suffix!r}" if suffix else "no extension"
        raise ExportError(path, f"{named}; {what} writes {', '.join(supported)}")
    return suffix


@contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """A fresh file next to ``path`` to write; it replaces ``path`` when the block succeeds, so a
    failed export leaves no half-written file (nor destroys an older one)."""
    if path.is_dir():
        raise ExportError(path, "it is a folder; give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(path, f"cannot create the folder {folder} ({exc.strerror or exc})") from None
    # Same extension: OpenCV picks the container by it.
    partial = folder / f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}"
    try:
        # Created now, so an unwritable folder fails here with the OS's reason, not in OpenCV,
        # which would only say it could not open a writer.
        with open(partial, "xb"):
            pass
    except OSError as exc:
        raise ExportError(path, f"cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        yield partial
        if partial.stat().st_size == 0:
            raise ExportError(path, "OpenCV wrote nothing (the encoder failed)")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# -- video ---------------------------------------------------------------------------------------
def export_video(
    answers: Iterable[Answer],
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    caption: bool = True,
    shapes: bool = True,
    size: tuple[int, int] | None = None,
    codec: str | None = None,
    events: Iterable[Event] = (),
) -> Path:
    """Write the frames the model saw, at their capture times, as a video or an animated image.

    Args:
        answers: the session (a ``History``, or answers in any order; placed by capture time).
        path: ``.mp4`` or ``.webm`` (video), ``.gif``, ``.png``/``.apng`` or ``.webp`` (animated).
            Its folder is created; an existing file is replaced.
        fps: output frames a second; None: 10, or up to 30 when answers come faster than that.
        caption: draw each answer (or a failed request's error) in a bar under the picture.
        shapes: draw the answer's boxes and points, as ``Answer.annotated()`` does.
        size: (width, height) of the picture; None: the first frame's. Other frames are scaled
            to fit, centred. Rounded up to even numbers (video codecs need them).
        codec: the FourCC for videos (default 'mp4v' for .mp4, 'VP80' for .webm).
        events: (epoch seconds, label) markers, e.g. a watched condition's events, each shown for a
            second in the picture's top-right corner.

    Returns the path written. Raises :class:`ExportError` (a ``ValueError``) naming the path when
    there is no frame to show, the extension is not one of the above, or the file cannot be written.
    """
    target = Path(path)
    suffix = _check_suffix(target, (*VIDEO_FORMATS, *ANIMATION_FORMATS), "export_video")
    start, shots = _timeline(answers, frames_only=True)
    if not shots:
        raise ExportError(target, "the session has no answers with a frame")
    rate = _auto_fps([s.at for s in shots]) if fps is None else float(fps)
    if not (math.isfinite(rate) and rate > 0):
        raise ExportError(target, f"fps must be a positive number, not {fps!r}")
    if size is not None and not (size[0] > 0 and size[1] > 0):
        raise ExportError(target, f"size must be (width, height) in pixels, not {size!r}")
    composer = _Composer(shots, size, caption=caption, shapes=shapes, path=target)
    runs = _runs(shots, rate, [(t - start, label) for t, label in events])
    with _writing(target) as partial:
        if suffix in VIDEO_FORMATS:
            _write_video(partial, target, runs, composer, rate, codec or VIDEO_FORMATS[suffix])
        else:
            _write_animation(partial, target, runs, composer, rate)
    return target


def _auto_fps(times: Sequence[float]) -> float:
    """10 fps, or enough that answers a short gap apart each get a frame of their own (≤ 30)."""
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a > 1e-3]
    if not gaps:
        return DEFAULT_FPS
    # Epoch seconds near 1.7e9 carry float noise in the µs: it must not add a frame a second.
    needed = math.ceil(1 / min(gaps) - 0.01)
    return float(min(MAX_AUTO_FPS, max(DEFAULT_FPS, needed)))


@dataclass(frozen=True)
class _Run:
    """Output frames ``first`` to ``end - 1`` all show shot ``shot`` with these event labels."""

    first: int
    end: int
    shot: int
    events: tuple[str, ...]


def _frame_of(seconds: float, fps: float) -> int:
    return math.floor(seconds * fps + _EPS)


def _runs(shots: Sequence[_Shot], fps: float, events: Sequence[tuple[float, str]]) -> list[_Run]:
    """The video as runs of identical frames (the video repeats them, an animation holds them)."""
    total = _frame_of(shots[-1].at, fps) + 1
    starts = [_frame_of(shot.at, fps) for shot in shots]
    hold = max(1, round(EVENT_S * fps))
    marks = [(_frame_of(at, fps), label) for at, label in events]
    # What is on screen changes only where a shot or a marker begins or a marker ends.
    cuts = {0, total, *starts}
    cuts.update(min(max(k, 0), total) for first, _ in marks for k in (first, first + hold))
    edges = sorted(cuts)
    runs: list[_Run] = []
    for first, end in itertools.pairwise(edges):
        # The newest shot begun by this frame (a later shot due in the same frame wins).
        shot = bisect.bisect_right(starts, first) - 1
        labels = tuple(label for at, label in marks if at <= first < at + hold)
        if runs and (runs[-1].shot, runs[-1].events) == (shot, labels):
            runs[-1] = _Run(runs[-1].first, end, shot, labels)
        else:
            runs.append(_Run(first, end, shot, labels))
    return runs


def _write_video(
    partial: Path, target: Path, runs: Sequence[_Run], composer: _Composer, fps: float, codec: str
) -> None:
    import cv2

    if len(codec) != 4:
        raise ExportError(target, f"codec must be a FourCC of 4 characters, not {codec!r}")
    height, width = composer.shape
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*codec), fps, (width, height))
    try:
        if not writer.isOpened():
            raise ExportError(
                target,
                f"this OpenCV ({cv2.__version__}) cannot write {codec!r} video to {target.suffix}; "
                f"try another codec or extension ({', '.join(VIDEO_FORMATS)})",
            )
        for run in runs:
            frame = composer.frame(run.shot, run.events)
            for _ in range(run.first, run.end):
                writer.write(frame)
    finally:
        writer.release()


def _write_animation(
    partial: Path, target: Path, runs: Sequence[_Run], composer: _Composer, fps: float
) -> None:
    import cv2

    if not hasattr(cv2, "imwriteanimation"):
        raise ExportError(
            target, f"animated images need OpenCV 4.11 or newer (this is {cv2.__version__}); use .mp4"
        )

    def ms(frame: int) -> int:
        # From the frame count, not summed per run, so rounding does not drift.
        return round(frame * 1000 / fps)

    animation = cv2.Animation()
    animation.frames = [composer.frame(run.shot, run.events) for run in runs]
    animation.durations = [max(1, ms(run.end) - ms(run.first)) for run in runs]
    if not cv2.imwriteanimation(str(partial), animation):
        raise ExportError(target, f"this OpenCV ({cv2.__version__}) could not write {target.suffix}")


class _Composer:
    """Draws the output frame for a shot: the picture fitted to the size, shapes, markers, caption."""

    def __init__(
        self,
        shots: Sequence[_Shot],
        size: tuple[int, int] | None,
        *,
        caption: bool,
        shapes: bool,
        path: Path,
    ) -> None:
        self._shots = shots
        self._shapes = shapes
        self._path = path
        if size is None:
            first = self._decode(0)
            size = (first.shape[1], first.shape[0])
        # Even sizes: encoders with 4:2:0 chroma refuse odd ones.
        self._width = size[0] + size[0] % 2
        self._height = size[1] + size[1] % 2
        self._text = _TextStyle.for_width(self._width)
        self._bar = self._text.bar_height(CAPTION_LINES) if caption else 0
        self._bar += self._bar % 2
        # One picture on screen at a time: its frame is kept while runs repeat it.
        self._cached: tuple[int, tuple[str, ...], Image] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the output frames."""
        return self._height + self._bar, self._width

    def frame(self, index: int, events: tuple[str, ...]) -> Image:
        if self._cached is not None and self._cached[:2] == (index, events):
            return self._cached[2]
        canvas = np.zeros((*self.shape, 3), np.uint8)
        picture = self._fit(self._decode(index))
        answer = self._shots[index].answer
        if self._shapes and answer.shapes:
            picture = annotate(picture, answer.shapes)
        top = (self._height - picture.shape[0]) // 2
        left = (self._width - picture.shape[1]) // 2
        canvas[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
        for row, label in enumerate(events):
            _event_tag(canvas[: self._height], label, row, self._text)
        if self._bar:
            canvas[self._height :] = BAR
            if answer.ok:
                text, ink = answer.text, TEXT
            else:
                text, ink = f"error: {answer.error}", ERROR_TEXT
            self._text.draw_lines(
                canvas[self._height :], _wrap(_drawable(text), self._text, CAPTION_LINES), ink
            )
        self._cached = (index, events, canvas)
        return canvas

    def _decode(self, index: int) -> Image:
        import cv2

        answer = self._shots[index].answer
        image = cv2.imdecode(np.frombuffer(answer.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ExportError(
                self._path, f"the frame of answer #{answer.seq} is not an image OpenCV can decode"
            )
        return np.ascontiguousarray(image, dtype=np.uint8)

    def _fit(self, image: Image) -> Image:
        import cv2

        height, width = image.shape[:2]
        if (width, height) == (self._width, self._height):
            return image
        scale = min(self._width / width, self._height / height)
        fitted = (max(1, round(width * scale)), max(1, round(height * scale)))
        shrink = scale < 1
        resized = cv2.resize(image, fitted, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.ascontiguousarray(resized, dtype=np.uint8)


@dataclass(frozen=True)
class _TextStyle:
    """Hershey text sized to the frame: about 60 characters across."""

    scale: float
    thickness: int
    line_height: int
    ascent: int
    pad: int
    #: Pixels a line of caption text may take.
    room: int

    @classmethod
    def for_width(cls, width: int) -> _TextStyle:
        import cv2

        scale = max(0.4, width / 900)
        thickness = 1 if scale < 0.8 else 2
        (_, ascent), baseline = cv2.getTextSize("Ag", _FONT, scale, thickness)
        pad = max(4, ascent // 2)
        return cls(scale, thickness, ascent + baseline + max(2, ascent // 2), ascent, pad, width - 2 * pad)

    def width_of(self, text: str) -> int:
        import cv2

        return int(cv2.getTextSize(text, _FONT, self.scale, self.thickness)[0][0])

    def bar_height(self, lines: int) -> int:
        return lines * self.line_height + 2 * self.pad

    def draw_lines(self, bar: Image, lines: Sequence[str], ink: BGR) -> None:
        import cv2

        for row, line in enumerate(lines):
            baseline_y = self.pad + row * self.line_height + self.ascent
            cv2.putText(
                bar, line, (self.pad, baseline_y), _FONT, self.scale, ink, self.thickness, cv2.LINE_AA
            )


def _event_tag(picture: Image, label: str, row: int, style: _TextStyle) -> None:
    """``label`` on a filled tag in the top-right corner (stacked when several are due)."""
    import cv2

    text = _drawable(label)[:40] or "event"
    width = style.width_of(text) + 2 * style.pad
    height = style.line_height + style.pad
    right = picture.shape[1] - style.pad
    top = style.pad + row * (height + style.pad)
    cv2.rectangle(picture, (max(right - width, 0), top), (right, top + height), EVENT_INK, -1)
    cv2.putText(
        picture,
        text,
        (max(right - width, 0) + style.pad, top + style.pad // 2 + style.ascent + 1),
        _FONT,
        style.scale,
        (0, 0, 0),
        style.thickness,
        cv2.LINE_AA,
    )


def _drawable(text: str) -> str:
    """``text`` as Hershey fonts can draw it: accents dropped ("é" to "e"), other non-ASCII
    characters as "?", whitespace runs (newlines too) as one space."""
    out = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            continue
        if char.isspace():
            out.append(" ")
        else:
            out.append(char if " " <= char <= "~" else "?")
    return " ".join("".join(out).split())


def _wrap(text: str, style: _TextStyle, max_lines: int) -> list[str]:
    """Greedy word wrap to the bar's width; a word too long for a line is cut; past ``max_lines``
    the last line ends in "..."."""
    room = style.room
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if style.width_of(candidate) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
        while len(word) > 1 and style.width_of(word) > room:
            cut = _longest_fit(word, style, room)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
        if len(lines) > max_lines:
            break
    if current:
        lines.append(current)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and style.width_of(last.rstrip() + "...") > room:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip() + "..."]


def _longest_fit(word: str, style: _TextStyle, room: int) -> int:
    """How many leading characters of ``word`` fit in ``room`` pixels (at least one)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if style.width_of(word[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return low


# -- captions ------------------------------------------------------------------------------------
def export_captions(
    answers: Iterable[Answer], path: str | os.PathLike[str], *, last_s: float = LAST_CUE_S
) -> Path:
    """Write the answers as subtitles, SRT or WebVTT by the extension (``.srt``, ``.vtt``).

    Each answer is shown from its frame's capture time (counted from the first frame's, as in
    :func:`export_video`, so the two line up) until the next answer's capture time; the last for
    ``last_s`` seconds. Failed answers get no cue (they end the one before). Returns the path.
    Raises :class:`ExportError` naming the path when there is nothing to caption, the extension is
    not one of those, or the file cannot be written.
    """
    target = Path(path)
    suffix = _check_suffix(target, CAPTION_FORMATS, "export_captions")
    _, shots = _timeline(answers, frames_only=False)
    if not (math.isfinite(last_s) and last_s > 0):
        raise ExportError(target, f"last_s must be a positive number of seconds, not {last_s!r}")
    cues = []
    for index, shot in enumerate(shots):
        start = round(shot.at * 1000)
        end = round(shots[index + 1].at * 1000) if index + 1 < len(shots) else start + round(last_s * 1000)
        lines = _cue_lines(shot.answer.text, vtt=suffix == ".vtt") if shot.answer.ok else []
        # A cue of no length was superseded by an answer about the same instant.
        if lines and end > start:
            cues.append((start, end, lines))
    if not cues:
        raise ExportError(target, "the session has no answers to caption (none answered with a capture time)")
    if suffix == ".vtt":
        blocks = ["WEBVTT"] + [f"{_stamp(s, '.')} --> {_stamp(e, '.')}\n" + "\n".join(t) for s, e, t in cues]
    else:
        blocks = [
            f"{n}\n{_stamp(s, ',')} --> {_stamp(e, ',')}\n" + "\n".join(t)
            for n, (s, e, t) in enumerate(cues, start=1)
        ]
    with _writing(target) as partial:
        partial.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return target


def _stamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _cue_lines(text: str, *, vtt: bool) -> list[str]:
    """The answer as cue lines: a blank line would end the cue early, so there are none, and
    markup is neutralised (the answer is untrusted): WebVTT escapes it; SRT has no escapes, so
    angle brackets become look-alikes that players do not read as tags."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if vtt:
        return [line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in lines]
    return [line.replace("<", "\u2039").replace(">", "\u203a") for line in lines]
