"""A session's answers as data: flat records, a pandas table, and a folder on disk (JSONL + JPEGs)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, overload

from ._chat import ChatParams, Usage
from ._records import Answer, Timing
from ._schema import Schema, to_schema
from ._shapes import Box, Point, Shape

__all__ = ["History", "answer_from_dict", "answer_to_dict", "load_session"]

#: The file in a saved session's folder that holds one answer per line.
ANSWERS_FILE = "answers.jsonl"
FRAMES_DIR = "frames"
#: Bumped when the saved layout changes in a way older readers would misread. Not for new columns:
#: older readers ignore them (the request's settings beyond the first four came that way).
FORMAT_VERSION = 1
#: The formats `load_session` reads; a file in any other fails with a clear error, never misread.
READABLE_FORMATS = (1,)

# Not saved as they are: the frame goes to its own file, the exception object stays in memory,
# the others are spread into plain columns.
_SKIPPED = {"jpeg", "exception", "usage", "timing", "data", "shapes", "params", "logprobs"}


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    """One answer as a flat dict of plain values (the request's settings, usage and timing spread
    into columns: ``prompt``, ``model``, ``max_tokens``, ``temperature``, ``schema``…)."""
    row: dict[str, Any] = {}
    for f in fields(Answer):
        if f.name == "params":
            row.update(_params_to_dict(answer.params))  # where the four columns always were
            # The model column says which model answered, as it always did (an alias's or a
            # gateway's route may differ from the one asked for, kept in the params).
            row["model"] = answer.model
        elif f.name not in _SKIPPED:
            row[f.name] = getattr(answer, f.name)
    usage = answer.usage
    row["prompt_tokens"] = usage.prompt_tokens if usage else None
    row["completion_tokens"] = usage.completion_tokens if usage else None
    timing = answer.timing.as_dict() if answer.timing else {}
    for name in (f.name for f in fields(Timing)):
        row[f"timing_{name}"] = timing.get(name)
    row["has_timing"] = answer.timing is not None
    row["data"] = _plain(answer.data)
    row["shapes"] = [shape.as_dict() for shape in answer.shapes]
    return row


def _params_to_dict(params: ChatParams | None) -> dict[str, Any]:
    """One column per ``ChatParams`` field, so a new request setting is saved with no change here."""
    row = {f.name: getattr(params, f.name) if params else None for f in fields(ChatParams)}
    schema: Schema | None = row["schema"]
    row["schema"] = {"name": schema.name, "schema": schema.json_schema} if schema else None
    return row


def _params_from_dict(row: dict[str, Any]) -> ChatParams | None:
    """The inverse of :func:`_params_to_dict`; None for a row that holds no request."""
    if not isinstance(row.get("prompt"), str):
        return None
    # Rows saved before the other settings were kept have the first four only: the rest take
    # ChatParams' defaults.
    values = {f.name: row[f.name] for f in fields(ChatParams) if f.name in row}
    schema = values.get("schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise TypeError(f"schema is a {type(schema).__name__}, not a saved schema")
        # Back as a dict schema: the Pydantic model or dataclass it may have come from cannot be
        # rebuilt from JSON, so the same schema is sent again but ``data`` stays plain JSON.
        values["schema"] = to_schema(schema.get("schema"), name=schema.get("name"))
    return ChatParams(**values)


def _plain(data: Any) -> Any:
    """Structured data as JSON values (a Pydantic model or dataclass becomes a dict)."""
    if hasattr(data, "model_dump"):
        return data.model_dump(mode="json")
    if is_dataclass(data) and not isinstance(data, type):
        return asdict(data)
    return data


def answer_from_dict(row: dict[str, Any], jpeg: bytes = b"") -> Answer:
    """The inverse of :func:`answer_to_dict` (unknown keys are ignored, so newer files load)."""
    known = {f.name for f in fields(Answer)} - _SKIPPED
    values = {k: v for k, v in row.items() if k in known}
    prompt, completion = row.get("prompt_tokens"), row.get("completion_tokens")
    usage = Usage(prompt, completion) if isinstance(prompt, int) and isinstance(completion, int) else None
    timing = None
    if row.get("has_timing"):
        values_t: dict[str, Any] = {f.name: row.get(f"timing_{f.name}") for f in fields(Timing)}
        timing = Timing(**values_t)
    shapes = tuple(_shape(item) for item in row.get("shapes") or () if isinstance(item, dict))
    return Answer(
        **values,
        params=_params_from_dict(row),
        usage=usage,
        timing=timing,
        jpeg=jpeg,
        data=row.get("data"),
        shapes=shapes,
    )


def _shape(item: dict[str, Any]) -> Shape:
    fields_ = {k: v for k, v in item.items() if k != "kind"}
    return Point(**fields_) if item.get("kind") == "point" else Box(**fields_)


class History(Sequence[Answer]):
    """A snapshot of a session's answers (and failures), oldest first.

    Indexable like a list; ``to_records()`` / ``to_pandas()`` for analysis; ``save(path)`` keeps
    it on disk and :func:`load_session` brings it back (e.g. to replay the frames elsewhere);
    ``export_video(path)`` and ``export_captions(path)`` make something to share.
    """

    def __init__(self, answers: Iterable[Answer] = ()) -> None:
        self._answers = tuple(answers)

    @overload
    def __getitem__(self, index: int) -> Answer: ...

    @overload
    def __getitem__(self, index: slice) -> History: ...

    def __getitem__(self, index: int | slice) -> Answer | History:
        if isinstance(index, slice):
            return History(self._answers[index])
        return self._answers[index]

    def __len__(self) -> int:
        return len(self._answers)

    def __iter__(self) -> Iterator[Answer]:
        return iter(self._answers)

    def __repr__(self) -> str:
        failed = sum(1 for a in self._answers if not a.ok)
        return f"History({len(self)} answers, {failed} failed)"

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per answer (the JPEG left out)."""
        return [answer_to_dict(a) for a in self._answers]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame``, one row per answer; needs pandas (``pip install pandas``)."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "History.to_pandas() needs pandas: `pip install pandas` (or use to_records())"
            ) from None
        frame = pd.DataFrame.from_records(self.to_records())
        if "created_at" in frame:
            frame["created_at"] = pd.to_datetime(frame["created_at"], unit="s")
        return frame

    def save(self, path: str | Path) -> Path:
        """Write the answers to ``path/answers.jsonl`` and each frame to ``path/frames/``.

        The folder is created; a session already in it is replaced. Returns the folder.
        """
        folder = Path(path)
        frames = folder / FRAMES_DIR
        frames.mkdir(parents=True, exist_ok=True)
        for old in frames.glob("*.jpg"):
            old.unlink()
        lines = []
        for index, answer in enumerate(self._answers, start=1):
            row = answer_to_dict(answer)
            row["format"] = FORMAT_VERSION
            if answer.jpeg:
                name = f"{index:06d}.jpg"
                (frames / name).write_bytes(answer.jpeg)
                row["frame"] = f"{FRAMES_DIR}/{name}"
            lines.append(json.dumps(row, ensure_ascii=False))
        (folder / ANSWERS_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return folder

    def export_video(
        self,
        path: str | Path,
        *,
        fps: float | None = None,
        caption: bool = True,
        shapes: bool = True,
        size: tuple[int, int] | None = None,
        codec: str | None = None,
        events: Iterable[tuple[float, str]] = (),
    ) -> Path:
        """Write the frames the model saw, at the times they were captured, as ``.mp4``, ``.webm``
        (plays in browsers), ``.gif``, ``.png`` (APNG) or ``.webp``.

        ``fps``: frames a second (None: 10, more when answers came faster); ``caption``: each
        answer, or a failed request's error, in a bar under the picture; ``shapes``: boxes and
        points drawn as ``Answer.annotated()`` draws them; ``size``: (width, height), default the
        first frame's; ``codec``: a FourCC for videos; ``events``: (epoch seconds, label) markers.
        Returns the path. Raises ``ValueError`` naming the path when no answer has a frame, the
        extension is unknown or the file cannot be written.
        """
        # Imported here: the export module is only needed by those who export.
        from ._export import export_video

        return export_video(
            self._answers,
            path,
            fps=fps,
            caption=caption,
            shapes=shapes,
            size=size,
            codec=codec,
            events=events,
        )

    def export_captions(self, path: str | Path) -> Path:
        """Write the answers as subtitles, ``.srt`` or ``.vtt``, timed to match ``export_video``:
        each from its frame's capture time until the next answer's (the last for 2 s); failed
        requests get none. Returns the path; raises ``ValueError`` as ``export_video`` does."""
        from ._export import export_captions

        return export_captions(self._answers, path)


def load_session(path: str | Path) -> History:
    """A session saved with ``save_session`` / ``History.save``, frames included."""
    folder = Path(path)
    answers_file = folder / ANSWERS_FILE
    if not answers_file.is_file():
        raise FileNotFoundError(f"{answers_file} not found: is {folder} a folder written by save_session()?")
    answers = []
    for number, line in enumerate(answers_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{answers_file}, line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ValueError(
                f"{answers_file}, line {number}: not a saved answer (a JSON {type(row).__name__})"
            )
        # save() has written the field on every row since sessions were first saved; a row without
        # it was written some other way (e.g. from to_records()), in the one layout there was.
        version = row.get("format", 1)
        if type(version) is not int or version not in READABLE_FORMATS:
            from . import __version__  # here, not at the top: the package imports this module

            readable = ", ".join(str(v) for v in READABLE_FORMATS)
            raise ValueError(
                f"{answers_file}, line {number}: session format {version!r}, but rtvlm-widget "
                f"{__version__} reads format {readable} only. If a newer rtvlm-widget saved it, "
                "upgrade this one to load it: pip install --upgrade rtvlm-widget"
            )
        frame = row.get("frame")
        jpeg = (folder / frame).read_bytes() if isinstance(frame, str) and (folder / frame).is_file() else b""
        try:
            answers.append(answer_from_dict(row, jpeg))
        except (TypeError, ValueError) as exc:  # ValueError: settings ChatParams refuses
            raise ValueError(f"{answers_file}, line {number}: not a saved answer ({exc})") from None
    return History(answers)
