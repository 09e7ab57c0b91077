"""One error tree: every error the package raises derives from RtvlmError and keeps the built-in
base users may already catch; the kernel side's core loads no widget library."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import rtvlm_widget
from rtvlm_widget import RtvlmError

REPO = Path(__file__).resolve().parent.parent


def _our_errors() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the package, by qualified name; private ones
    (never raised to users) left out."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.iter_modules(rtvlm_widget.__path__):
        module = importlib.import_module(f"rtvlm_widget.{info.name}")
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_error_of_the_package_derives_from_the_root() -> None:
    errors = _our_errors()
    assert "rtvlm_widget._errors.CameraUnavailable" in errors and len(errors) >= 10, errors
    assert [name for name, cls in errors.items() if not issubclass(cls, RtvlmError)] == []
    public = [getattr(rtvlm_widget, n) for n in rtvlm_widget.__all__ if n != "__version__"]
    assert all(
        issubclass(e, RtvlmError) for e in public if isinstance(e, type) and issubclass(e, BaseException)
    )


@pytest.mark.parametrize(
    ("where", "name", "builtin"),
    [
        ("_errors", "CameraUnavailable", RuntimeError),
        ("_sources", "SourceError", RuntimeError),
        ("_sources", "SourceEnded", RuntimeError),
        ("_export", "ExportError", ValueError),
        ("_protocol", "ProtocolError", ValueError),
        ("_blocking", "BlockingUnsupported", RuntimeError),
    ],
)
def test_errors_keep_their_builtin_base(where: str, name: str, builtin: type[Exception]) -> None:
    # ``except RuntimeError`` / ``except ValueError`` written before the root existed still works.
    cls = getattr(importlib.import_module(f"rtvlm_widget.{where}"), name)
    assert issubclass(cls, builtin) and issubclass(cls, RtvlmError)


def test_camera_unavailable_is_still_importable_from_the_widget_module() -> None:
    from rtvlm_widget._widget import CameraUnavailable

    assert CameraUnavailable is rtvlm_widget.CameraUnavailable


@pytest.mark.parametrize(
    "module", ["_controller", "_sources", "_compare", "_history", "_costs", "_prefetch", "_sampler"]
)
def test_the_kernel_side_core_loads_no_widget_library(module: str) -> None:
    # A fresh interpreter: this one has imported the widgets already.
    code = (
        f"import json, sys, rtvlm_widget.{module}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'anywidget', 'ipywidgets'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
