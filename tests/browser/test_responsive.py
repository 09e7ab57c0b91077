"""The kernel stays usable while a request is on its way: requests run as asyncio tasks."""

from __future__ import annotations

import base64

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.scripted import GatedServer


def test_cells_run_while_a_request_is_in_flight(jupyter_lab: JupyterLab, notebook_page: NotebookPage) -> None:
    with GatedServer("the held answer") as server:
        jupyter_lab.put_notebook(
            "gated.ipynb",
            [
                "from rtvlm_widget import RealtimeVLM\n"
                f"app = RealtimeVLM(base_url={server.base_url!r}, model='gated', send_size='original')\n"
                "app",
                "print('in flight:', app.last_answer is None, len(app.history))",
            ],
        )
        panel = notebook_page.show_panel(jupyter_lab, "gated.ipynb")
        panel.locator("button.rtvlm-send-once").click()
        assert server.received.wait(30), "the widget never called the server"

        # The server holds its answer; the kernel must still run this cell meanwhile.
        assert notebook_page.run_cell(1, timeout=20), notebook_page.cell_text(1)
        assert "in flight: True 0" in notebook_page.cell_text(1)

        server.release()
        answer = panel.locator(".rtvlm-answer textarea")
        notebook_page.page.wait_for_function(
            "(el) => el.value === 'the held answer'", arg=answer.element_handle(), timeout=20_000
        )

    # One request, carrying the frame as one JPEG data URL next to the prompt.
    assert len(server.image_requests) == 1
    content = server.image_requests[0]["messages"][0]["content"]
    images = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert len(images) == 1
    prefix = "data:image/jpeg;base64,"
    assert images[0].startswith(prefix)
    assert base64.b64decode(images[0][len(prefix) :])[:3] == b"\xff\xd8\xff"
    assert server.image_requests[0]["model"] == "gated"
