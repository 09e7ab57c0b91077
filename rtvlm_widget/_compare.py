"""Many requests about frozen frames, as a table: prompt × model comparisons and session replays.

A :class:`Comparison` is the data (``to_records()``, ``to_pandas()``) and displays as a
:class:`~._grid.ResultGrid`. :func:`run_grid` fills it, a few requests at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ._chat import ChatParams
from ._history import answer_to_dict
from ._protocol import Frame
from ._records import Answer
from ._schema import to_schema

if TYPE_CHECKING:
    from ._grid import ResultGrid

__all__ = ["Comparison", "Job", "frame_from", "run_grid"]

#: ``request(params, frame) -> Answer``: one request, failures as answers (never raising).
Requester = Callable[[ChatParams, Frame], Awaitable[Answer]]


@dataclass(frozen=True)
class Job:
    """One cell of the grid: ask ``params`` about ``frame``."""

    row: int
    column: int
    params: ChatParams
    frame: Frame


class Comparison:
    """Answers arranged in rows and columns (e.g. prompts × models, or frames × recorded/new).

    ``comparison[row, column]`` is the :class:`Answer` (None while it runs); ``to_records()`` /
    ``to_pandas()`` give one row per cell. Displaying it shows the grid.
    """

    def __init__(self, title: str, rows: Sequence[str], columns: Sequence[str], grid: ResultGrid) -> None:
        self.title = title
        self.rows = list(rows)
        self.columns = list(columns)
        self.grid = grid
        self._answers: dict[tuple[int, int], Answer] = {}
        #: The request (cell) that already displayed the grid; it is not shown twice there.
        self.shown_in: str | None = None

    def __getitem__(self, key: tuple[int, int]) -> Answer | None:
        return self._answers.get(key)

    def __len__(self) -> int:
        return len(self._answers)

    def __repr__(self) -> str:
        return (
            f"Comparison({self.title!r}, {len(self.rows)}×{len(self.columns)}, {len(self._answers)} answers)"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.shown_in is not None and self.shown_in == current_cell():
            return {"text/plain": repr(self)}  # compare() as a cell's last line: one grid, not two
        return self.grid.root._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        """Show the grid now (it fills in as answers arrive); outside IPython, do nothing."""
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is not None:
            display(self.grid.root)  # type: ignore[no-untyped-call]
            self.shown_in = current_cell()

    def put(self, row: int, column: int, answer: Answer, *, counted: bool = True) -> None:
        """Fill a cell (``counted=False``: one that needed no request, e.g. a recorded answer)."""
        self._answers[row, column] = answer
        if counted:
            self.grid.set(row, column, answer)
        else:
            self.grid.preset(row, column, answer)

    @property
    def answers(self) -> dict[tuple[int, int], Answer]:
        """``{(row, column): answer}`` for the cells done so far."""
        return dict(self._answers)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per cell: ``row`` and ``column`` labels, then the answer's fields."""
        records = []
        for (r, c), answer in sorted(self._answers.items()):
            records.append({"row": self.rows[r], "column": self.columns[c], **answer_to_dict(answer)})
        return records

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of :meth:`to_records`; needs pandas."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas: `pip install pandas` (or use to_records())"
            ) from None
        return pd.DataFrame.from_records(self.to_records())


async def run_grid(comparison: Comparison, jobs: Sequence[Job], request: Requester, concurrency: int) -> None:
    """Run ``jobs`` at most ``concurrency`` at a time, filling ``comparison`` as each finishes."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(job: Job) -> None:
        async with gate:
            answer = await request(job.params, job.frame)
        comparison.put(job.row, job.column, answer)

    await asyncio.gather(*(one(job) for job in jobs))


def current_cell() -> str | None:
    """The message id of the request the kernel is running now (a cell), if any."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    parent = kernel.get_parent()
    header = parent.get("header") if isinstance(parent, dict) else None
    msg_id = header.get("msg_id") if isinstance(header, dict) else None
    return msg_id if isinstance(msg_id, str) else None


def frame_from(image: object, seq: int = 0, quality: int = 90) -> Frame:
    """A :class:`Frame` from a JPEG (bytes), a BGR/gray array, a ``Frame`` or an ``Answer``."""
    if isinstance(image, Frame):
        return image
    if isinstance(image, Answer):
        if not image.jpeg:
            raise ValueError(f"answer #{image.seq} has no frame (it failed before one arrived)")
        return Frame(seq=image.seq, jpeg=image.jpeg, width=image.frame_width, height=image.frame_height)
    if isinstance(image, (bytes, bytearray)):
        array = cv2.imdecode(np.frombuffer(bytes(image), np.uint8), cv2.IMREAD_COLOR)
        if array is None:
            raise ValueError(f"{len(image)} bytes given as a frame are not an image OpenCV can read")
        return Frame(seq=seq, jpeg=bytes(image), width=int(array.shape[1]), height=int(array.shape[0]))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(
                f"a frame array must be uint8 H×W×3 (BGR) or H×W, got {image.dtype} {image.shape}"
            )
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        return Frame(seq=seq, jpeg=encoded.tobytes(), width=int(image.shape[1]), height=int(image.shape[0]))
    raise TypeError(
        f"cannot use a {type(image).__name__} as a frame (JPEG bytes, an array, a Frame or an Answer)"
    )


def with_changes(params: ChatParams, **changes: Any) -> ChatParams:
    """``params`` with ``changes`` (None values ignored)."""
    return dataclasses.replace(params, **{k: v for k, v in changes.items() if v is not None})


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_compare(
    params: ChatParams, prompts: Sequence[str], models: Sequence[str | None], frame: Frame
) -> tuple[Comparison, list[Job]]:
    """Prompts down, models across, all about ``frame``."""
    if not prompts:
        raise ValueError("compare() needs at least one prompt")
    if not models:
        raise ValueError("compare() needs at least one model (None: the current one)")
    columns = [m or params.model or "(server default)" for m in models]
    from ._grid import ResultGrid  # here: planning and the table need no widget library

    grid = ResultGrid("Prompt × model", [_short(p) for p in prompts], columns, shared_thumbnail=frame.jpeg)
    comparison = Comparison("prompt × model", list(prompts), columns, grid)
    jobs = [
        Job(r, c, with_changes(params, prompt=prompt, model=model), frame)
        for r, prompt in enumerate(prompts)
        for c, model in enumerate(models)
    ]
    return comparison, jobs


def plan_replay(
    answers: Sequence[Answer], params: ChatParams, **changes: Any
) -> tuple[Comparison, list[Job]]:
    """Recorded frames down; the recorded answer and a new one across: each frame asked again with
    its own request's settings (prompt, schema, thinking, all of them) and ``changes``.

    ``params`` stands in for an answer recorded without its request.
    """
    recorded = [a for a in answers if a.jpeg]
    if not recorded:
        raise ValueError("nothing to replay: the session has no answers with frames")
    if changes.get("schema") is not None:
        changes["schema"] = to_schema(changes["schema"])  # as ask() takes it: a dict, model or class
    old = recorded[0].params or params
    new = with_changes(old, **changes)
    columns = [f"recorded: {old.model or 'default'} · {_short(old.prompt, 30)}"]
    columns.append(f"replay: {new.model or 'default'} · {_short(new.prompt, 30)}")
    rows = [f"#{a.seq}" for a in recorded]
    from ._grid import ResultGrid

    grid = ResultGrid("Replay", rows, columns, thumbnails=[a.jpeg for a in recorded])
    comparison = Comparison("replay", rows, columns, grid)
    jobs = []
    for r, answer in enumerate(recorded):
        comparison.put(r, 0, answer, counted=False)
        jobs.append(Job(r, 1, with_changes(answer.params or params, **changes), frame_from(answer)))
    return comparison, jobs
