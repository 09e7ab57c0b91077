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
from ._records import Answer
from ._widget import CameraUnavailable

__version__ = "0.1.0"

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
    "Usage",
    "VLMClient",
    "VLMError",
    "__version__",
    "normalize_base_url",
]
