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
from ._protocol import Frame
from ._records import Answer, Timing
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
    "ImagesNotSupported",
    "RealtimeVLM",
    "ServerHTTPError",
    "ServerUnreachable",
    "Timing",
    "Usage",
    "VLMClient",
    "VLMError",
    "__version__",
    "normalize_base_url",
]
