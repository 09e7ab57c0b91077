"""Live-pipeline behaviour in the real page: streamed tokens, no frame backlog, phase timings."""

from __future__ import annotations

import json
from pathlib import Path

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer
from tests.servers.scripted import GatedServer
from tests.servers.trickle import TrickleServer

TOKENS = ["The", " red", " square", " sits", " top", " left."]

# Records every distinct value the answer box and the overlay take, as they change.
_WATCH_JS = """(panel) => {
  window.__seen = {box: [], overlay: []};
  const box = panel.querySelector('.rtvlm-answer textarea');
  const overlay = panel.querySelector('.rtvlm-overlay');
  const note = (list, value) => { if (value && list[list.length - 1] !== value) list.push(value); };
  new MutationObserver(() => note(window.__seen.overlay, overlay.textContent))
    .observe(overlay, {childList: true, characterData: true, subtree: true});
  window.__seenTimer = setInterval(() => note(window.__seen.box, box.value), 10);
}"""


def _show(lab: JupyterLab, page: NotebookPage, name: str, source: str) -> None:
    lab.put_notebook(name, [source, "print('STATE ' + json.dumps(state()))"])
    page.show_panel(lab, name)


def _state(page: NotebookPage) -> dict[str, object]:
    assert page.run_cell(1), page.cell_text(1)
    line = next(x for x in page.cell_text(1).splitlines() if x.startswith("STATE "))
    state: dict[str, object] = json.loads(line.removeprefix("STATE "))
    return state


CELL = """import json
from rtvlm_widget import RealtimeVLM
app = RealtimeVLM(base_url={url!r}, model={model!r}, interval={interval}, send_size="original")
def state():
    last = app.last_answer
    return {{'requested': app.view.frames_requested, 'received': app.view.frames_received,
            'answers': len(app.history), 'text': last.text if last else None,
            'timing': last.timing.as_dict() if last and last.timing else None,
            'captured_at': last.captured_at if last else None,
            'created_at': last.created_at if last else None}}
app"""


def test_tokens_appear_as_they_stream(jupyter_lab: JupyterLab, notebook_page: NotebookPage) -> None:
    with TrickleServer(TOKENS, gap_s=0.25) as server:
        _show(
            jupyter_lab,
            notebook_page,
            "stream.ipynb",
            CELL.format(url=server.base_url, model="trickle", interval=0.5),
        )
        panel = notebook_page.cell_output(0).locator(".rtvlm-panel")
        panel.evaluate(_WATCH_JS)
        panel.locator("button.rtvlm-send-once").click()
        full = "".join(TOKENS)
        notebook_page.page.wait_for_function("(t) => window.__seen.box.includes(t)", arg=full, timeout=20_000)
        seen = notebook_page.page.evaluate("window.__seen")
        panel.locator(".rtvlm-log tbody tr").first.wait_for(timeout=20_000)  # the answer is complete
        state = _state(notebook_page)
        for _ in range(20):  # the page's "shown" note follows the answer by a frame or so
            timing = state["timing"]
            if isinstance(timing, dict) and timing["display_s"] is not None:
                break
            notebook_page.page.wait_for_timeout(100)
            state = _state(notebook_page)
    # The answer grew in front of the user: several prefixes before the whole text, in both places.
    for values in (seen["box"], seen["overlay"]):
        assert values[-1] == full
        assert len(values) >= 3, values
        assert all(full.startswith(v) for v in values)
    assert state["text"] == full
    timing = state["timing"]
    assert isinstance(timing, dict)
    # Phases are recorded: the first token came well before the last (0.25 s per token).
    assert 0 < timing["first_token_s"] < timing["http_s"] <= timing["total_s"]
    assert timing["capture_s"] >= 0 and timing["encode_s"] > 0 and timing["transfer_s"] >= 0
    # The page reported when the whole answer was on screen.
    assert timing["display_s"] is not None and timing["display_s"] >= 0


def test_a_slow_answer_does_not_queue_frames(jupyter_lab: JupyterLab, notebook_page: NotebookPage) -> None:
    with GatedServer("finally") as server:
        _show(
            jupyter_lab,
            notebook_page,
            "slow.ipynb",
            CELL.format(url=server.base_url, model="gated", interval=0.1),
        )
        panel = notebook_page.cell_output(0).locator(".rtvlm-panel")
        panel.locator("button.rtvlm-run").click()
        assert server.received.wait(20)
        notebook_page.page.wait_for_timeout(1500)  # 15 intervals pass while the answer is held
        held = _state(notebook_page)
        server.release()
        notebook_page.page.wait_for_function(
            "(el) => el.value === 'finally'",
            arg=panel.locator(".rtvlm-answer textarea").element_handle(),
            timeout=20_000,
        )
        panel.locator("button.rtvlm-run").click()  # stop
    # One frame for the one request in flight and at most one fetched ahead; none piled up.
    requested, received = int(str(held["requested"])), int(str(held["received"]))
    assert requested <= 2 and received <= 2 and held["answers"] == 0
    assert len(server.requests) >= 1


def test_tokens_stream_from_llama_server(
    jupyter_lab: JupyterLab,
    notebook_page: NotebookPage,
    llama_server_binary: Path,
    tiny_model: tuple[Path, Path],
) -> None:
    # A long answer (2000 tokens, ~0.5 s here) so that the stream spans several partial updates.
    long_context = ("-c", "4096", "--parallel", "1")
    with LlamaServer(llama_server_binary, *tiny_model, extra_args=long_context) as server:
        cell = CELL.format(url=server.base_url, model="tiny-vlm", interval=0.5)
        assert 'send_size="original")' in cell
        cell = cell.replace('send_size="original")', 'send_size="original", max_tokens=2000)')
        _show(jupyter_lab, notebook_page, "stream_llama.ipynb", cell)
        panel = notebook_page.cell_output(0).locator(".rtvlm-panel")
        panel.evaluate(_WATCH_JS)
        panel.locator("button.rtvlm-send-once").click()
        panel.locator(".rtvlm-log tbody tr").first.wait_for(timeout=30_000)
        seen = notebook_page.page.evaluate("window.__seen")
        state = _state(notebook_page)
    full = state["text"]
    assert isinstance(full, str) and full
    values = seen["box"]
    # Growing prefixes of the final answer appeared before it, as llama-server streamed them.
    assert values[-1] == full
    assert len(values) >= 3, len(values)
    assert all(full.startswith(v) for v in values)
