"""Fixtures for browser tests: a real JupyterLab / Notebook 7, headless Chromium, fake camera.

Anything that cannot start raises with the reason (and the server log): a browser test
that did not run must show up as a failure, never as a skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.camera import write_quadrants_y4m
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage, launch_chromium

REPO_ROOT = Path(__file__).resolve().parents[2]


def server_env() -> dict[str, str]:
    # Kernels inherit the server's environment: with the repo root first on PYTHONPATH
    # they import this checkout's rtvlm_widget and the `tests` helpers (e.g. camera.py).
    parts = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(parts)}


@pytest.fixture(scope="session")
def camera_y4m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 640x480 four-quadrant Y4M (see camera.QUADRANT_COLORS_BGR)."""
    path = tmp_path_factory.mktemp("camera") / "quadrants.y4m"
    write_quadrants_y4m(path)
    return path


@pytest.fixture(scope="session")
def jupyter_lab(artifacts_dir: Path) -> Iterator[JupyterLab]:
    """A JupyterLab 4 server on a free loopback port, for the whole session."""
    with JupyterLab("lab", env=server_env(), keep_log=artifacts_dir / "jupyter-lab.log") as lab:
        yield lab


@pytest.fixture(scope="session")
def jupyter_notebook(artifacts_dir: Path) -> Iterator[JupyterLab]:
    """A Notebook 7 server (same class, ``kind="notebook"``), for the whole session."""
    log = artifacts_dir / "jupyter-notebook.log"
    with JupyterLab("notebook", env=server_env(), keep_log=log) as server:
        yield server


@pytest.fixture(scope="session")
def chromium(camera_y4m: Path) -> Iterator[Browser]:
    """Headless Chromium whose camera shows `camera_y4m`."""
    # The sync API runs its own event loop on this (main) thread for the whole session.
    with sync_playwright() as pw:
        browser = launch_chromium(pw, camera_y4m)
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keeps each phase's report on the item so `notebook_page` knows if the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def notebook_page(
    chromium: Browser, request: pytest.FixtureRequest, artifacts_dir: Path
) -> Iterator[NotebookPage]:
    """A fresh browser context and page; on failure leaves a screenshot and the errors.

    Call ``.open(server, name)`` on it. Its kernel is shut down afterwards so a
    session-wide server does not collect idle kernels.
    """
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    nb = NotebookPage(page)
    try:
        yield nb
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
            shot = artifacts_dir / f"{stem}.png"
            try:
                nb.screenshot(shot)
                print(f"screenshot: {shot}")
            except Exception as exc:  # noqa: BLE001 - a report helper must not hide the failure
                print(f"screenshot failed: {exc}")
            print("console/page errors:\n" + ("\n".join(nb.collect_console()) or "(none)"))
        try:
            nb.shutdown_kernel()
        except Exception as exc:  # noqa: BLE001 - best effort; the server stops at session end
            print(f"kernel shutdown failed: {exc}")
        context.close()
