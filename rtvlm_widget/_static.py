"""What a saved notebook shows for a panel where no kernel runs it (GitHub, nbviewer, nbconvert).

A widget's output holds only a model id: without the kernel that owns the model there is nothing
to draw. So under each displayed panel goes a second, plain output (``text/html`` + ``text/plain``)
with the newest frame the model saw (its boxes and points drawn), the latest answers and a small
latency plot. It is refreshed with ``update_display`` on its own display id, never the panel's:
updating the panel's output makes JupyterLab build a second view, which reopens the camera.

In a live JupyterLab / Notebook 7 page the copy is hidden by a CSS rule it carries, which applies
only while the page's shell (``#main``) holds this panel's rendered view. Static viewers have no
such shell (or strip ``<style>``), so they show it. Model output is untrusted: every string that
goes into the HTML is escaped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import logging
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._client import redact_url
from ._plot import percentile
from ._records import Answer
from ._tasks import running_loop

if TYPE_CHECKING:
    from ._controller import Controller

__all__ = ["FRAME_EDGE", "UPDATE_EVERY_S", "StaticFallback", "frame_jpeg", "latency_svg", "render", "show"]

log = logging.getLogger("rtvlm_widget")

#: Answers listed, newest first.
ANSWERS_SHOWN = 5
#: Answers in the latency plot.
PLOTTED = 60
#: Longest edge (px) of the saved frame: keeps the notebook file small.
FRAME_EDGE = 640
#: Characters kept of each answer (the full text stays in ``app.history``).
TEXT_LIMIT = 2000
#: Live mode refreshes the copy at most this often; the end of every cell brings it up to date.
UPDATE_EVERY_S = 2.0


@dataclass(frozen=True)
class Header:
    """Who answered what: the panel's settings when the copy was drawn."""

    base_url: str
    model: str | None
    prompt: str


def frame_jpeg(answer: Answer, max_edge: int = FRAME_EDGE) -> bytes:
    """The frame ``answer`` was about, as a JPEG: its shapes drawn, no longer than ``max_edge``.

    Unchanged bytes when there is nothing to draw or shrink (the saved frame is the one sent).
    """
    if not answer.jpeg:
        raise ValueError(f"answer #{answer.seq} has no frame")
    too_big = max(answer.frame_width, answer.frame_height) > max_edge
    if not answer.shapes and not too_big and answer.frame_width:
        return answer.jpeg
    import cv2

    from ._annotate import annotate

    image = annotate(answer.jpeg, answer.shapes)
    height, width = image.shape[:2]
    scale = max_edge / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("OpenCV could not encode the frame")
    return encoded.tobytes()


def latency_svg(answers: Sequence[Answer], width: int = 260, height: int = 64) -> str:
    """Bars of end-to-end time (and a tick at the first token) for the answers that succeeded,
    oldest left, with p50/p95; empty when none did. Only numbers go in: nothing to escape."""
    samples: list[tuple[float, float | None]] = []
    for answer in answers[-PLOTTED:]:
        if not answer.ok:
            continue
        timing = answer.timing
        total = timing.total_s if timing is not None else answer.total_s
        first = timing.first_token_s if timing is not None else answer.first_token_s
        samples.append((total * 1000, None if first is None else first * 1000))
    if not samples:
        return ""
    totals = [t for t, _ in samples]
    top = max(totals) * 1.15 or 1.0
    plot_h = height - 14  # room for the caption under the bars
    step = width / max(len(samples), 20)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="latency of the last {len(samples)} answers">',
        f'<rect x="0" y="0" width="{width}" height="{plot_h}" fill="#8881"/>',
    ]
    for index, (total, first) in enumerate(samples):
        x = index * step
        bar = max(1.0, total / top * plot_h)
        parts.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{plot_h - bar:.1f}" width="{step * 0.8:.1f}" '
            f'height="{bar:.1f}" fill="#4a90d9"/>'
        )
        if first is not None:
            y = plot_h - max(1.0, first / top * plot_h)
            parts.append(
                f'<rect x="{x + step * 0.1:.1f}" y="{y - 1:.1f}" width="{step * 0.8:.1f}" '
                f'height="2" fill="#e07b00"/>'
            )
    caption = (
        f"end to end p50 {percentile(totals, 50):.0f} ms · p95 {percentile(totals, 95):.0f} ms"
        " · orange: first token"
    )
    parts.append(
        f'<text x="0" y="{height - 2}" font-size="10" font-family="sans-serif" fill="#777">{caption}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _answer_html(answer: Answer) -> str:
    latency = f"{answer.total_s * 1000:.0f} ms"
    head = html.escape(f"#{answer.seq} · {latency}")
    if answer.ok:
        body = html.escape(_short(answer.text)) or "<i>(empty answer)</i>"
        style = ""
    else:
        body = html.escape(_short(answer.error or "failed"))
        style = ' style="color:#c0392b"'
    return (
        f'<li{style}><span style="color:#888;font-size:11px">{head}</span> '
        f'<span style="white-space:pre-wrap">{body}</span></li>'
    )


def render(answers: Sequence[Answer], header: Header, token: str) -> dict[str, str]:
    """The copy as a display bundle: ``text/html`` (escaped, with its hiding rule) and ``text/plain``."""
    framed = next((a for a in reversed(answers) if a.jpeg), None)
    picture = ""
    if framed is not None:
        try:
            data = base64.b64encode(frame_jpeg(framed)).decode("ascii")
        except (ValueError, ImportError) as exc:
            picture = f"<p>frame #{framed.seq} could not be drawn: {html.escape(str(exc))}</p>"
        else:
            shown = "with its boxes and points" if framed.shapes else "as sent"
            picture = (
                f'<img class="rtvlm-static-frame" src="data:image/jpeg;base64,{data}" '
                f'alt="{html.escape(f"frame #{framed.seq} {shown}")}" '
                'style="max-width:min(100%,480px);height:auto;border-radius:4px">'
            )
    newest = list(reversed(answers[-ANSWERS_SHOWN:]))
    listed = "".join(_answer_html(a) for a in newest) or "<li><i>no answers yet</i></li>"
    model = html.escape(header.model or "server default")
    about = html.escape(f"{redact_url(header.base_url)} · ") + model
    failed = sum(1 for a in answers if not a.ok)
    counts = f"{len(answers)} answer" + ("" if len(answers) == 1 else "s")
    counts += f", {failed} failed" if failed else ""
    saved = time.strftime("%Y-%m-%d %H:%M:%S")
    live = f"rtvlm-live-{token}"
    static = f"rtvlm-static-{token}"
    hide = (
        f"body:has(#main .{live}) .{static},"
        f"body:has(#main .{live}) .jp-OutputArea-child:has(.{static}){{display:none!important}}"
    )
    page = (
        f'<div class="rtvlm-static {static}" style="font-family:sans-serif;font-size:13px;'
        'border:1px solid #8884;border-radius:6px;padding:8px;max-width:960px">'
        f"<style>{hide}</style>"
        f'<div style="margin-bottom:6px"><b>RealtimeVLM</b> <span style="color:#888">{about}</span></div>'
        '<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">'
        f"{picture}"
        '<div style="flex:1;min-width:240px">'
        f'<div><span style="color:#888">Prompt:</span> <span style="white-space:pre-wrap">'
        f"{html.escape(_short(header.prompt))}</span></div>"
        f'<ul style="list-style:none;padding-left:0;margin:6px 0">{listed}</ul>'
        f"{latency_svg(answers)}"
        "</div></div>"
        f'<div style="color:#888;font-size:11px;margin-top:6px">Saved view of the panel ({counts}, '
        f"{saved}): shown where no kernel runs it.</div>"
        "</div>"
    )
    lines = [f"RealtimeVLM saved view ({counts}), prompt: {header.prompt!r}"]
    lines += [f"#{a.seq} {a.total_s * 1000:.0f} ms: {a.text if a.ok else a.error}" for a in newest]
    return {"text/html": page, "text/plain": "\n".join(lines)}


class StaticFallback:
    """The saved view of one app: shown under each display of its panel, refreshed on answers."""

    def __init__(self, root: Any, controller: Controller) -> None:
        self.token = uuid.uuid4().hex[:12]
        self.display_id = f"rtvlm-static-{self.token}"
        self._root = root
        self._controller = controller
        self._shown = False
        self._sent: str | None = None
        self._sent_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        #: Answers arrived since the copy was last sent.
        self.stale = False
        #: Copies sent with ``update_display`` (for tests).
        self.updates = 0
        # The live page hides the copy while it renders this panel (see the module doc).
        root.add_class(f"rtvlm-live-{self.token}")
        controller.on_answer(self._on_answer)
        _register(self)

    def bundle(self) -> dict[str, str]:
        params = self._controller.params
        header = Header(self._controller.client.base_url, params.model, params.prompt)
        return render(list(self._controller.history), header, self.token)

    def display(self, panel_text: str) -> None:
        """Show the panel, then the copy under it (in the same cell)."""
        from IPython.display import display

        panel = dict(self._root._repr_mimebundle_() or {})
        panel["text/plain"] = panel_text
        display(panel, raw=True)  # type: ignore[no-untyped-call]
        bundle = self.bundle()
        display(bundle, raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
        self._shown = True
        self._sent = bundle["text/html"]
        self._sent_at = time.monotonic()
        self.stale = False

    def _on_answer(self, _answer: Answer) -> None:
        if not self._shown:
            return
        self.stale = True
        wait = self._sent_at + UPDATE_EVERY_S - time.monotonic()
        loop = running_loop()
        if wait <= 0 or loop is None:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Send the copy now if answers arrived since it was last sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._shown and self.stale):
            return
        self.stale = False
        try:
            bundle = self.bundle()
            if bundle["text/html"] == self._sent:
                return
            from IPython.display import update_display

            update_display(bundle, raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
        except Exception:  # the saved view must never break the panel or a cell
            log.exception("could not refresh the saved view of the panel")
            return
        self._sent = bundle["text/html"]
        self._sent_at = time.monotonic()
        self.updates += 1


_fallbacks: weakref.WeakKeyDictionary[object, StaticFallback] = weakref.WeakKeyDictionary()
_live: weakref.WeakSet[StaticFallback] = weakref.WeakSet()
_hooked = False


def _register(fallback: StaticFallback) -> None:
    """Every cell's end brings the copies up to date: answers from ``ask()`` or a short live run
    are in the saved notebook even when the cell ends before the next timed refresh."""
    global _hooked
    _live.add(fallback)
    if _hooked:
        return
    with contextlib.suppress(ImportError):
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            # post_run_cell, not post_execute: the comm package fires post_execute for every widget
            # message, which would re-render this copy (frame included) for every live frame.
            shell.events.register("post_run_cell", _flush_all)
            _hooked = True


def _flush_all(_result: object = None) -> None:
    for fallback in list(_live):
        if fallback.stale:
            fallback.flush()


def show(app: object, root: Any, controller: Controller) -> None:
    """Display ``app``'s panel (``root``) with its saved view under it."""
    fallback = _fallbacks.get(app)
    if fallback is None:
        fallback = _fallbacks[app] = StaticFallback(root, controller)
    fallback.display(repr(app))
