"""History as data: flat records, pandas, and a saved session read back (frames included)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtvlm_widget import Answer, ChatParams, History, Timing, Usage, load_session
from rtvlm_widget._history import FORMAT_VERSION, READABLE_FORMATS
from rtvlm_widget._schema import to_schema


def _jpeg(color: tuple[int, int, int]) -> bytes:
    image = np.full((48, 64, 3), color, np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def _answers() -> list[Answer]:
    timing = Timing(0.1, 0.002, 0.004, 0.001, 0.05, 0.2, 0.31, display_s=0.01)
    good = Answer(
        seq=1,
        text="a red square",
        params=ChatParams("What?", model="m", max_tokens=10, temperature=0.0),
        latency_s=0.2,
        total_s=0.31,
        usage=Usage(30, 4),
        frame_width=64,
        frame_height=48,
        jpeg=_jpeg((0, 0, 200)),
        timing=timing,
    )
    failed = Answer(
        seq=2,
        text="",
        params=ChatParams("What?", max_tokens=10, temperature=0.0),
        latency_s=0.0,
        total_s=0.01,
        error="server said 503",
    )
    return [good, failed]


def test_records_and_pandas_have_one_flat_row_per_answer() -> None:
    history = History(_answers())
    assert len(history) == 2 and history[0].text == "a red square" and isinstance(history[:1], History)
    assert repr(history) == "History(2 answers, 1 failed)"
    records = history.to_records()
    assert records[0]["prompt_tokens"] == 30 and records[0]["timing_http_s"] == 0.2
    assert records[1]["error"] == "server said 503" and records[1]["prompt_tokens"] is None
    assert "jpeg" not in records[0] and "exception" not in records[0]
    frame = history.to_pandas()
    assert list(frame["text"]) == ["a red square", ""]
    assert str(frame["created_at"].dtype).startswith("datetime64")


def test_saved_session_reads_back_the_same(tmp_path: Path) -> None:
    answers = _answers()
    folder = History(answers).save(tmp_path / "run")
    lines = (folder / "answers.jsonl").read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2]
    assert sorted(p.name for p in (folder / "frames").iterdir()) == ["000001.jpg"]
    back = load_session(folder)
    assert [a.text for a in back] == [a.text for a in answers]
    assert back[0].jpeg == answers[0].jpeg and back[1].jpeg == b""
    assert back[0].usage == answers[0].usage and back[0].timing == answers[0].timing
    assert back[1].error == "server said 503" and back[1].timing is None
    # Saving again into the same folder replaces the session, leaving no stale frames.
    History(answers[1:]).save(folder)
    assert list((folder / "frames").iterdir()) == [] and len(load_session(folder)) == 1


def test_loading_something_else_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="written by save_session"):
        load_session(tmp_path)
    (tmp_path / "answers.jsonl").write_text('{"seq": 1}\n')
    with pytest.raises(ValueError, match="line 1: not a saved answer"):
        load_session(tmp_path)
    (tmp_path / "answers.jsonl").write_text("\nnot json\n")
    with pytest.raises(ValueError, match="line 2: not JSON"):
        load_session(tmp_path)


def test_saved_rows_carry_a_format_this_release_reads(tmp_path: Path) -> None:
    folder = History(_answers()).save(tmp_path / "run")
    rows = [json.loads(x) for x in (folder / "answers.jsonl").read_text().splitlines()]
    assert [row["format"] for row in rows] == [FORMAT_VERSION, FORMAT_VERSION]
    assert FORMAT_VERSION in READABLE_FORMATS


@pytest.mark.parametrize("version", [2, 0, "1", None, 1.5])
def test_an_unknown_format_names_the_file_the_version_and_the_way_out(
    tmp_path: Path, version: object
) -> None:
    folder = History(_answers()).save(tmp_path / "run")
    answers_file = folder / "answers.jsonl"
    first, second = answers_file.read_text().splitlines()
    # A newer release's file: the second row is in a format this one does not know.
    answers_file.write_text(first + "\n" + json.dumps({**json.loads(second), "format": version}) + "\n")
    with pytest.raises(ValueError, match="session format") as caught:
        load_session(folder)
    message = str(caught.value)
    assert f"{answers_file}, line 2: session format {version!r}" in message
    assert "reads format 1 only" in message and "pip install --upgrade rtvlm-widget" in message


def test_rows_without_a_format_read_as_the_first_one(tmp_path: Path) -> None:
    # E.g. written by hand from to_records(), which carries no format field.
    records = History(_answers()).to_records()
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    back = load_session(tmp_path)
    assert [a.text for a in back] == ["a red square", ""] and back[1].error == "server said 503"


def test_a_row_that_is_not_an_object_is_not_a_saved_answer(tmp_path: Path) -> None:
    (tmp_path / "answers.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: not a saved answer"):
        load_session(tmp_path)


@dataclass
class _Count:
    count: int


def test_every_request_setting_is_saved_and_read_back_the_schema_as_a_dict(tmp_path: Path) -> None:
    params = ChatParams(
        "How many?", model="m", max_tokens=33, temperature=1.5, stream=False, schema=to_schema(_Count),
        thinking=False,
    )  # fmt: skip
    answer = replace(_answers()[0], params=params, data=_Count(3))
    # The table keeps the columns it always had, and gains the other settings.
    row = History([answer]).to_records()[0]
    assert (row["prompt"], row["model"], row["max_tokens"], row["temperature"]) == ("How many?", "m", 33, 1.5)
    assert row["schema"] == {"name": "Count", "schema": params.schema.json_schema}  # type: ignore[union-attr]
    back = load_session(History([answer]).save(tmp_path / "run"))[0]
    assert back.params is not None and back.params.schema is not None
    # The same schema, sent the same way; only the dataclass to build is not in the file.
    assert back.params.schema.target is None and back.data == {"count": 3}
    assert params.schema is not None
    assert back.params == replace(params, schema=replace(params.schema, target=None))
    assert (back.prompt, back.model, back.max_tokens, back.temperature) == ("How many?", "m", 33, 1.5)


def test_a_row_saved_before_the_other_settings_were_kept_still_loads(tmp_path: Path) -> None:
    # Format 1 as first written: of the request, only these four columns.
    kept = {"prompt", "model", "max_tokens", "temperature"}
    row = History(_answers()[:1]).save(tmp_path / "run") / "answers.jsonl"
    old = json.loads(row.read_text())
    old = {k: v for k, v in old.items() if k in kept or k not in {f.name for f in fields(ChatParams)}}
    row.write_text(json.dumps(old) + "\n")
    back = load_session(tmp_path / "run")[0]
    assert back.params == ChatParams("What?", model="m", max_tokens=10, temperature=0.0)


def test_the_request_columns_do_not_collide_with_the_answer_columns() -> None:
    # answer_to_dict spreads ChatParams into the answer's row: a shared name would be lost.
    others = {f.name for f in fields(Answer)} | {f"timing_{f.name}" for f in fields(Timing)}
    others |= {"prompt_tokens", "completion_tokens", "has_timing"}
    assert not {f.name for f in fields(ChatParams)} & others
