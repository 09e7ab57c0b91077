"""Eight panels in one kernel, all live against one llama-server, for ~45 s: every one keeps
answering, none goes over its own in-flight limit, nothing fails.

Each panel's client is wrapped in the kernel (an instance attribute; the product is untouched) to
count its open requests: the peak per panel must stay at or under that panel's ``max_in_flight``
(1 or 2, alternating), and a panel allowed 2 must have used 2 (so the count means something).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage
from tests.servers.llama import LlamaServer

PANELS = 8
LIVE_S = 45.0
#: The last stretch of the run in which every panel must still have answered.
RECENT_S = 10.0

SETUP = """import json, time
from IPython.display import display
from rtvlm_widget import RealtimeVLM

apps, stats = [], []

def count_open(app):
    client, stat = app._controller.client, {{'open': 0, 'peak': 0}}
    original = client.chat
    async def chat(*args, **kwargs):
        stat['open'] += 1
        stat['peak'] = max(stat['peak'], stat['open'])
        try:
            return await original(*args, **kwargs)
        finally:
            stat['open'] -= 1
    client.chat = chat
    stats.append(stat)

for i in range({panels}):
    app = RealtimeVLM(base_url={url!r}, max_tokens=4, temperature=0.0, interval=0.5,
                      max_in_flight=1 + i % 2, send_size=256)
    count_open(app)
    apps.append(app)
    display(app)
"""

REPORT = """print('STATE ' + json.dumps([{
    'limit': app._controller.max_in_flight, 'peak': stat['peak'], 'live': app._controller.live,
    'ok': [a.created_at for a in app.history if a.ok],
    'errors': [a.error for a in app.history if not a.ok],
} for app, stat in zip(apps, stats)] + [time.time()]))"""


def report(nb: NotebookPage) -> tuple[list[dict[str, Any]], float]:
    out = nb.run_code(REPORT, timeout=60)
    line = next(x for x in out.splitlines() if x.startswith("STATE "))
    *panels, now = json.loads(line.removeprefix("STATE "))
    return panels, float(now)


def test_eight_live_panels_in_one_kernel_keep_answering_within_their_limits(
    jupyter_lab: JupyterLab, notebook_page: NotebookPage, llama_server: LlamaServer
) -> None:
    nb = notebook_page
    jupyter_lab.put_notebook(
        "many.ipynb", [SETUP.format(panels=PANELS, url=llama_server.base_url), "for app in apps: app.start()"]
    )
    nb.open(jupyter_lab, "many.ipynb")
    assert nb.run_cell(0), nb.cell_text(0)
    views = nb.cell_output(0).locator(".rtvlm-view .rtvlm-badge[data-state='live']")
    deadline = time.monotonic() + 60
    while views.count() < PANELS:
        assert time.monotonic() < deadline, f"{views.count()} of {PANELS} cameras live"
        nb.page.wait_for_timeout(200)
    assert nb.run_cell(1), nb.cell_text(1)
    started = time.monotonic()
    nb.page.wait_for_timeout(LIVE_S * 1000)
    panels, now = report(nb)
    nb.run_code("for app in apps: app.stop()")
    elapsed = time.monotonic() - started

    answers = [len(p["ok"]) for p in panels]
    print(f"{sum(answers)} answers in {elapsed:.0f} s from {PANELS} panels: {answers}")
    assert all(p["live"] for p in panels)
    assert all(p["errors"] == [] for p in panels), [p["errors"][:3] for p in panels]
    # Every panel answered all along: in the last stretch too, and a fair share of the whole.
    assert all(any(t > now - RECENT_S for t in p["ok"]) for p in panels), [p["ok"][-1:] for p in panels]
    assert min(answers) >= max(5, max(answers) // 4), answers
    # Each within its own limit, and the limit of 2 was used (the counting works).
    assert all(1 <= p["peak"] <= p["limit"] for p in panels), [(p["peak"], p["limit"]) for p in panels]
    assert any(p["peak"] == 2 for p in panels if p["limit"] == 2), panels
    assert not nb.unexpected_errors()
