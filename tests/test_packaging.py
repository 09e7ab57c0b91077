"""The wheel carries the front end: ``pip install`` needs no Node and no source checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_js_and_the_typing_marker(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("rtvlm_widget-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = archive.read("rtvlm_widget/static/widget.js")
    assert "rtvlm_widget/py.typed" in names
    assert shipped == (REPO / "js" / "widget.js").read_bytes()
    assert not any(name.startswith("tests/") for name in names)
