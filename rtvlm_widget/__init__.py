"""rtvlm-widget: real-time vision-language models on your webcam, inside Jupyter.

The public names load on first use (PEP 562): jupyter_server imports this package at start-up for
its server extension (`_nodelay`), which must not pay for cv2, numpy, httpx or the widgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the submodule that defines it; tests/test_import_cost.py checks that this
# table, the imports below and __all__ name the same things.
_EXPORTS: dict[str, str] = {
    "annotate": "_annotate",
    "RealtimeVLM": "_app",
    "ChatParams": "_chat",
    "Completion": "_chat",
    "Usage": "_chat",
    "VLMClient": "_client",
    "normalize_base_url": "_client",
    "Comparison": "_compare",
    "Condition": "_conditions",
    "Event": "_conditions",
    "Events": "_conditions",
    "AnswerCutOff": "_errors",
    "AnswerTooLong": "_errors",
    "AuthenticationError": "_errors",
    "BadResponse": "_errors",
    "CameraUnavailable": "_errors",
    "ImagesNotSupported": "_errors",
    "RtvlmError": "_errors",
    "ServerHTTPError": "_errors",
    "ServerUnreachable": "_errors",
    "ThinkingUnfinished": "_errors",
    "VLMError": "_errors",
    "History": "_history",
    "load_session": "_history",
    "Frame": "_protocol",
    "Answer": "_records",
    "Timing": "_records",
    "ProbeResult": "_sendsize",
    "ProbeRow": "_sendsize",
    "DETECT_PROMPT": "_shapes",
    "DETECT_SCHEMA": "_shapes",
    "Box": "_shapes",
    "Point": "_shapes",
    "parse_shapes": "_shapes",
    "KernelSource": "_sources",
    "SourceEnded": "_sources",
    "SourceError": "_sources",
    "open_source": "_sources",
}

if TYPE_CHECKING:
    # What type checkers and IDEs see; at run time __getattr__ below imports these on demand.
    from ._annotate import annotate
    from ._app import RealtimeVLM
    from ._chat import ChatParams, Completion, Usage
    from ._client import VLMClient, normalize_base_url
    from ._compare import Comparison
    from ._conditions import Condition, Event, Events
    from ._errors import (
        AnswerCutOff,
        AnswerTooLong,
        AuthenticationError,
        BadResponse,
        CameraUnavailable,
        ImagesNotSupported,
        RtvlmError,
        ServerHTTPError,
        ServerUnreachable,
        ThinkingUnfinished,
        VLMError,
    )
    from ._history import History, load_session
    from ._protocol import Frame
    from ._records import Answer, Timing
    from ._sendsize import ProbeResult, ProbeRow
    from ._shapes import DETECT_PROMPT, DETECT_SCHEMA, Box, Point, parse_shapes
    from ._sources import KernelSource, SourceEnded, SourceError, open_source


def _load(name: str) -> Any:
    """A public name, its submodule imported on first access (``rtvlm_widget.X`` or a from-import)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later accesses find it without coming here
    return value


if not TYPE_CHECKING:
    # Hidden from type checkers: a visible module __getattr__ would make them accept any name.
    __getattr__ = _load


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server's entry: the server extension (TCP_NODELAY, see `_nodelay`) lives there."""
    return [{"module": "rtvlm_widget._nodelay"}]


__all__ = [
    "DETECT_PROMPT",
    "DETECT_SCHEMA",
    "Answer",
    "AnswerCutOff",
    "AnswerTooLong",
    "AuthenticationError",
    "BadResponse",
    "Box",
    "CameraUnavailable",
    "ChatParams",
    "Comparison",
    "Completion",
    "Condition",
    "Event",
    "Events",
    "Frame",
    "History",
    "ImagesNotSupported",
    "KernelSource",
    "Point",
    "ProbeResult",
    "ProbeRow",
    "RealtimeVLM",
    "RtvlmError",
    "ServerHTTPError",
    "ServerUnreachable",
    "SourceEnded",
    "SourceError",
    "ThinkingUnfinished",
    "Timing",
    "Usage",
    "VLMClient",
    "VLMError",
    "__version__",
    "annotate",
    "load_session",
    "normalize_base_url",
    "open_source",
    "parse_shapes",
]
