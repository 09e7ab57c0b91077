"""The errors a user can meet; each message says which URL, what happened and what to do."""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadResponse",
    "ImagesNotSupported",
    "ServerHTTPError",
    "ServerUnreachable",
    "VLMError",
]


class VLMError(Exception):
    """A request to the vision-language-model server failed.

    ``str(error)`` is a complete, readable message (shown as-is in the panel); ``url`` is the
    address that was called (never with credentials) and ``status`` the HTTP status, if any.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ServerUnreachable(VLMError):
    """No HTTP answer: connection refused, DNS failure or timeout."""


class ServerHTTPError(VLMError):
    """The server answered with a non-2xx status."""


class AuthenticationError(ServerHTTPError):
    """401/403: the API key is missing or wrong."""


class ImagesNotSupported(ServerHTTPError):
    """The server (or the chosen model) cannot take image input."""


class BadResponse(VLMError):
    """The server answered 2xx but not with an OpenAI-shaped body."""
