"""Every notebook in ``notebooks/`` runs headless, top to bottom, against llama-server, with a
generated video as the kernel-side source (``RTVLM_VIDEO``) in place of the browser camera.

nbclient executes them in a real kernel (no browser: a browser-camera ``ask()`` would time out, so
this also proves each notebook takes ``RTVLM_VIDEO``). The executed copies land in
``test-artifacts/notebooks/`` for a look. Committed notebooks carry no outputs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.servers.llama import LlamaServer
from tests.video_files import write_video

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
#: Seconds any one cell may take (the slowest asks a few times and runs live mode for 3 s).
CELL_TIMEOUT_S = 120


def kernel_env(base_url: str, video: Path) -> dict[str, str]:
    """The kernel's environment: this checkout first on the path, the server and the video."""
    path = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "RTVLM_BASE_URL": base_url,
        "RTVLM_VIDEO": str(video),
        "RTVLM_DEMO_NOTE": "",
    }


def execute(path: Path, workdir: Path, env: dict[str, str]) -> Any:
    """Run the notebook at ``path`` in ``workdir`` (files it writes land there); returns it executed.

    Raises nbclient's ``CellExecutionError`` (the failing cell's source and traceback) on an error.
    """
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)
    return notebook


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four seconds of 320x240 frames at 10 fps (each frame a flat colour naming its index)."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", 40, 10, 320, 240)


def test_there_are_the_five_notebooks() -> None:
    expected = {"quickstart", "prompt_playground", "detection_overlays", "record_and_replay", "video_file"}
    assert expected <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless(
    path: Path, llama_server: LlamaServer, clip: Path, tmp_path: Path, artifacts_dir: Path
) -> None:
    began = time.monotonic()
    notebook = execute(path, tmp_path, kernel_env(llama_server.base_url, clip))
    seconds = time.monotonic() - began
    out = artifacts_dir / "notebooks"
    out.mkdir(exist_ok=True)
    nbformat.write(notebook, out / path.name)  # type: ignore[no-untyped-call]
    print(f"{path.name}: {seconds:.1f} s")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # The panel is shown with its saved view under it (see tests/test_static_export.py).
    html = [o.data["text/html"] for c in code for o in c.outputs if "text/html" in o.get("data", {})]
    assert any('class="rtvlm-static ' in h for h in html), f"{path.name}: no saved view of the panel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path) -> None:
    """No outputs, execution counts or widget state in the repository (they come from a run)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    nbformat.validate(raw)  # the schema: what every Jupyter front end expects
    for index, cell in enumerate(raw["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name} cell {index} has outputs: strip them"
            assert cell["execution_count"] is None, f"{path.name} cell {index} has an execution count"
    assert "widgets" not in raw["metadata"], f"{path.name} holds widget state: strip it"
    assert "RTVLM_BASE_URL" in path.read_text(encoding="utf-8"), f"{path.name} ignores RTVLM_BASE_URL"
