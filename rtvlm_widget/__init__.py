"""rtvlm-widget: real-time vision-language models on your webcam, inside Jupyter."""

from __future__ import annotations

from ._annotate import annotate
from ._app import RealtimeVLM
from ._client import ChatParams, Completion, Usage, VLMClient, normalize_base_url
from ._compare import Comparison
from ._errors import (
    AuthenticationError,
    BadResponse,
    ImagesNotSupported,
    ServerHTTPError,
    ServerUnreachable,
    VLMError,
)
from ._history import History, load_session
from ._protocol import Frame
from ._records import Answer, Timing
from ._sendsize import ProbeResult, ProbeRow
from ._shapes import DETECT_PROMPT, DETECT_SCHEMA, Box, Point, parse_shapes
from ._sources import KernelSource, SourceEnded, SourceError, open_source
from ._widget import CameraUnavailable

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server's entry: the server extension (TCP_NODELAY, see `_nodelay`) lives there."""
    return [{"module": "rtvlm_widget._nodelay"}]


__all__ = [
    "DETECT_PROMPT",
    "DETECT_SCHEMA",
    "Answer",
    "AuthenticationError",
    "BadResponse",
    "Box",
    "CameraUnavailable",
    "ChatParams",
    "Comparison",
    "Completion",
    "Frame",
    "History",
    "ImagesNotSupported",
    "KernelSource",
    "Point",
    "ProbeResult",
    "ProbeRow",
    "RealtimeVLM",
    "ServerHTTPError",
    "ServerUnreachable",
    "SourceEnded",
    "SourceError",
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
