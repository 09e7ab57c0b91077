"""The main job: ``make run``'s launcher serves the quick-start notebook, which answers live."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.browser.conftest import REPO_ROOT, server_env
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage

QUICKSTART = Path("notebooks") / "quickstart.ipynb"


def test_demo_launcher_serves_the_quickstart_with_a_live_answer(
    notebook_page: NotebookPage, llama_server_binary: Path, artifacts_dir: Path
) -> None:
    # Same launcher as `make run` (it starts llama-server with the generated model, then
    # JupyterLab); served from a copy so the checkout's notebook is never modified.
    demo = JupyterLab(
        "lab",
        launcher=[sys.executable, "-m", "tests.servers.demo"],
        env=server_env(),
        keep_log=artifacts_dir / "demo.log",
        startup_timeout=120,
    )
    (demo.root_dir / "notebooks").mkdir(parents=True)
    shutil.copy(REPO_ROOT / QUICKSTART, demo.root_dir / QUICKSTART)
    # Nothing from the caller's shell may pick another server.
    demo.extra_env.update(RTVLM_DEMO_DIR=str(demo.root_dir), RTVLM_BASE_URL="", MODEL="", HF="")

    with demo:
        notebook_page.open(demo, str(QUICKSTART))
        assert notebook_page.run_cell(1), notebook_page.cell_text(1)
        assert "answers are random words" in notebook_page.cell_text(1)

        panel = notebook_page.cell_output(1).locator(".rtvlm-panel")
        panel.locator(".rtvlm-badge[data-state='live']").wait_for(timeout=30_000)
        panel.locator("button.rtvlm-send-once").click()
        answer = panel.locator(".rtvlm-answer textarea")
        panel.locator(".rtvlm-log tbody tr").first.wait_for(timeout=30_000)  # answer recorded
        assert notebook_page.run_cell(3), notebook_page.cell_text(3)
        history = notebook_page.cell_text(3)
        assert history.startswith("#") and answer.input_value().strip() in history
        notebook_page.page.screenshot(path=str(artifacts_dir / "quickstart.png"))
