"""compare() and replay() in real notebook cells against llama-server with two model aliases: the
grid shows in the page and fills in, the results come back as data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

SETUP = """import json
from rtvlm_widget import RealtimeVLM, load_session
app = RealtimeVLM(base_url={url!r}, model="tiny-a", prompt="What is in the picture?", max_tokens=6)
def out(tag, **values):
    print(tag + " " + json.dumps(values))
app"""

COMPARE = """res = app.compare(["Name a color.", "Count the squares."], models=["tiny-a", "tiny-b"],
                  max_tokens=4)
df = res.to_pandas()
out("CMP", n=len(res), cells=[[x["row"], x["column"], x["prompt"], x["model"], x["error"] is None, x["text"]]
    for x in res.to_records()], sizes=sorted({len(a.jpeg) for a in res.answers.values()}), rows=len(df),
    history=len(app.history))
res"""

COMPARE_ASYNC = """res2 = await app.compare_async(["Say hi."], models=[None], frame=res[0, 0])
out("CMPA", n=len(res2), text=res2[0, 0].text, same_frame=res2[0, 0].jpeg == res[0, 0].jpeg)"""

RECORD = """first = app.ask(); second = app.ask(max_tokens=3)
folder = app.save_session({folder!r})
out("REC", texts=[first.text, second.text])"""

REPLAY = """rep = app.replay(prompt="Describe it.", model="tiny-b", max_tokens=3)
out("REP", n=len(rep), rows=rep.rows, columns=rep.columns,
    cells=[[r, c, a.prompt, a.model, a.text, a.ok] for (r, c), a in sorted(rep.answers.items())])"""

REPLAY_SAVED = """rep2 = app.replay({folder!r}, prompt="Which colors?")
out("REP2", n=len(rep2), prompts=sorted({{a.prompt for a in rep2.answers.values()}}),
    ok=all(a.ok for a in rep2.answers.values()))"""


@pytest.fixture(scope="module")
def two_alias_server(
    llama_server_binary: Path, tiny_model: tuple[Path, Path], artifacts_dir: Path
) -> Iterator[LlamaServer]:
    """The tiny model under two names, as a server with two models looks to the widget."""
    with LlamaServer(
        llama_server_binary,
        *tiny_model,
        alias="tiny-a,tiny-b",
        log_path=artifacts_dir / "llama-server-two-aliases.log",
    ) as server:
        yield server


def _run(page: NotebookPage, index: int, tag: str, timeout: float = 90.0) -> dict[str, Any]:
    page.run_cell(index, wait=False)
    return page.tagged(index, tag, timeout)


def test_compare_prompts_by_models_and_replay_a_recorded_session(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, two_alias_server: LlamaServer, tmp_path: Path
) -> None:
    folder = tmp_path / "session"
    cells = [
        SETUP.format(url=two_alias_server.base_url),
        COMPARE,
        COMPARE_ASYNC,
        RECORD.format(folder=str(folder)),
        REPLAY,
        REPLAY_SAVED.format(folder=str(folder)),
    ]
    jupyter_lab.put_notebook("compare.ipynb", cells)
    notebook_page.show_panel(jupyter_lab, "compare.ipynb")

    compared = _run(notebook_page, 1, "CMP")
    assert compared["n"] == 4 and compared["rows"] == 4
    # Not recorded in the session: a comparison is its own table.
    assert compared["history"] == 0
    answers = {(row, column): rest for row, column, *rest in compared["cells"]}
    assert sorted(answers) == sorted(
        (p, m) for p in ("Name a color.", "Count the squares.") for m in ("tiny-a", "tiny-b")
    )
    for (row, _column), (prompt, model, ok, text) in answers.items():
        # llama-server answers every alias under its first name.
        assert (prompt, model, ok) == (row, "tiny-a", True) and text.strip()
    # Every cell saw the same frozen frame.
    assert len(compared["sizes"]) == 1

    # The grid is in the page once (not again for the returned value) and is complete.
    output = notebook_page.cell_output(1)
    assert output.locator(".rtvlm-grid").count() == 1
    grid = output.locator(".rtvlm-grid")
    assert "4 / 4 done" in (grid.text_content() or "")
    texts = [grid.locator("textarea").nth(i).input_value() for i in range(4)]
    assert sorted(texts) == sorted(v[3] for v in answers.values())
    heads = output.locator(".rtvlm-grid-head").all_text_contents()
    assert heads == ["tiny-a", "tiny-b"]
    assert grid.locator("img").count() == 1  # the frozen frame

    again = _run(notebook_page, 2, "CMPA")
    assert again["n"] == 1 and again["text"].strip() and again["same_frame"]

    recorded = _run(notebook_page, 3, "REC")
    replayed = _run(notebook_page, 4, "REP")
    assert len(replayed["rows"]) == 2
    assert replayed["columns"][0].startswith("recorded: tiny-a")
    assert replayed["columns"][1].startswith("replay: tiny-b · Describe it.")
    by_cell = {(r, c): rest for r, c, *rest in replayed["cells"]}
    assert [by_cell[0, 0][2], by_cell[1, 0][2]] == recorded["texts"]  # the recorded answers, as they were
    for row in (0, 1):
        prompt, _model, text, ok = by_cell[row, 1]
        assert (prompt, ok) == ("Describe it.", True) and text.strip()
    grid = notebook_page.cell_output(4).locator(".rtvlm-grid")
    assert grid.locator("img").count() == 2  # one thumbnail per recorded frame
    assert "2 / 2 done" in (grid.text_content() or "")

    saved = _run(notebook_page, 5, "REP2")
    assert saved == {"n": 4, "prompts": ["What is in the picture?", "Which colors?"], "ok": True}
