"""What importing the package costs: the server extension and a bare ``import rtvlm_widget`` stay light.

jupyter_server imports ``rtvlm_widget`` and ``rtvlm_widget._nodelay`` at start-up for the TCP_NODELAY
extension; neither may pull in the kernel side's heavy imports. Each check runs in a fresh
interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import rtvlm_widget

REPO = Path(__file__).resolve().parent.parent
INIT = REPO / "rtvlm_widget" / "__init__.py"
#: Top-level packages the kernel side needs and a server start must not pay for.
HEAVY = ("cv2", "numpy", "httpx", "httpcore", "anywidget", "ipywidgets", "pydantic", "pandas")

# Prints, as JSON, the heavy packages and rtvlm_widget modules loaded so far, and the seconds taken.
_REPORT = f"""
def report(began):
    import json, sys, time
    heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
    ours = sorted(m for m in sys.modules if m.split(".")[0] == "rtvlm_widget")
    return {{"heavy": heavy, "ours": ours, "seconds": round(time.perf_counter() - began, 3)}}
"""


def _run(body: str) -> dict[str, Any]:
    code = _REPORT + "import time\nbegan = time.perf_counter()\n" + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_server_extension_imports_nothing_heavy() -> None:
    # What jupyter_server does for an extension named in jpserver_extensions.
    got = _run(
        """
        import json, rtvlm_widget
        (point,) = rtvlm_widget._jupyter_server_extension_points()
        import importlib
        importlib.import_module(point["module"])._load_jupyter_server_extension
        print(json.dumps(report(began)))
        """
    )
    assert got["heavy"] == [], got
    assert got["ours"] == ["rtvlm_widget", "rtvlm_widget._nodelay"], got


def test_the_package_loads_a_name_on_first_use() -> None:
    got = _run(
        """
        import json, rtvlm_widget
        before = report(began)
        from rtvlm_widget import load_session
        where = [rtvlm_widget.RealtimeVLM.__module__, load_session.__module__]
        print(json.dumps({**before, "after": report(began)["heavy"], "where": where}))
        """
    )
    assert got["heavy"] == [] and got["ours"] == ["rtvlm_widget"], got
    # The names still work, and loading them did load the kernel side.
    assert got["where"] == ["rtvlm_widget._app", "rtvlm_widget._history"], got
    assert {"cv2", "numpy", "httpx", "anywidget", "ipywidgets"} <= set(got["after"]), got


def _type_checking_imports() -> dict[str, str]:
    """Name -> submodule of the imports under ``if TYPE_CHECKING:`` in __init__.py."""
    found: dict[str, str] = {}
    for node in ast.parse(INIT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module, ast.dump(stmt)
                found.update({alias.name: stmt.module for alias in stmt.names})
    return found


def test_the_lazy_table_the_typed_imports_and_all_agree() -> None:
    # Three lists of the same names: a name added to one only would fail at run time or in mypy.
    exports: dict[str, str] = rtvlm_widget._EXPORTS
    assert _type_checking_imports() == exports
    assert set(rtvlm_widget.__all__) == {*exports, "__version__"}
    for name, module in exports.items():
        assert getattr(rtvlm_widget, name) is getattr(sys.modules[f"rtvlm_widget.{module}"], name)
