"""rtvlm-widget: real-time vision-language models on your webcam, inside Jupyter."""

from __future__ import annotations

from ._app import RealtimeVLM
from ._client import ChatParams, Completion, Usage, VLMClient, normalize_base_url
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
from ._sources import KernelSource, SourceEnded, SourceError, open_source
from ._widget import CameraUnavailable

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server's entry: the server extension (TCP_NODELAY, see `_nodelay`) lives there."""
    return [{"module": "rtvlm_widget._nodelay"}]


__all__ = [
    "Answer",
    "AuthenticationError",
    "BadResponse",
    "CameraUnavailable",
    "ChatParams",
    "Completion",
    "Frame",
    "History",
    "ImagesNotSupported",
    "KernelSource",
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
    "load_session",
    "normalize_base_url",
    "open_source",
]
