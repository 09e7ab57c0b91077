"""The errors a user can meet; each message says what happened and what to do.

Every error the package raises for users derives from :class:`RtvlmError`, so one ``except``
catches them all; those that also derive from a built-in (``RuntimeError``, ``ValueError``) keep
it, so ``except`` clauses written against the built-in still work.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AnswerCutOff",
    "AnswerTooLong",
    "AuthenticationError",
    "BadResponse",
    "CameraUnavailable",
    "ImagesNotSupported",
    "RtvlmError",
    "ServerHTTPError",
    "ServerUnreachable",
    "ThinkingUnfinished",
    "VLMError",
]


class RtvlmError(Exception):
    """The root of every error rtvlm-widget raises for users."""


class CameraUnavailable(RtvlmError, RuntimeError):
    """The view could not deliver a frame; the message says why (permission, no camera, no view)."""


class VLMError(RtvlmError):
    """A request to the vision-language-model server failed.

    ``str(error)`` is a complete, readable message (shown as-is in the panel); ``url`` is the
    address that was called (never with credentials), ``status`` the HTTP status, if any, and
    ``retry_after`` the seconds the server asked to wait (``Retry-After``; live mode honours it).
    """

    def __init__(
        self, message: str, *, url: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        """The same request would fail the same way (a refusal, a wrong URL or key): live mode
        stops and says why, rather than retrying. Timeouts, refused connections, 408, 409, 425,
        429 and 5xx are transient: live mode retries them with a growing pause."""
        status = self.status
        return status is not None and 400 <= status < 500 and status not in (408, 409, 425, 429)


class ServerUnreachable(VLMError):
    """No HTTP answer: connection refused, DNS failure, timeout, or the connection broke off."""


class ServerHTTPError(VLMError):
    """The server answered with a non-2xx status."""


class AuthenticationError(ServerHTTPError):
    """401/403: the API key is missing or wrong."""


class ImagesNotSupported(ServerHTTPError):
    """The server (or the chosen model) cannot take image input."""

    @property
    def permanent(self) -> bool:
        return True  # llama-server says so with a 500; the next frame fares no better


class BadResponse(VLMError):
    """The server answered 2xx but not with an OpenAI-shaped body."""


class AnswerCutOff(ServerUnreachable):
    """The answer stream ended early: the connection closed before ``[DONE]`` or a finish reason
    (a gateway or proxy cut it). ``partial_text`` holds what had arrived; it is not an answer."""

    def __init__(self, message: str, *, url: str, status: int | None = None, partial_text: str = "") -> None:
        super().__init__(message, url=url, status=status)
        self.partial_text = partial_text

    @property
    def permanent(self) -> bool:
        return False  # the next request may well get through


class AnswerTooLong(BadResponse):
    """The server kept sending far past ``max_tokens``; the client stopped reading.

    ``partial_text`` holds what had arrived (capped), when it could be read.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None, partial_text: str = "") -> None:
        super().__init__(message, url=url, status=status)
        self.partial_text = partial_text

    @property
    def permanent(self) -> bool:
        return True  # the same settings get the same answer: asking again will not help


class ThinkingUnfinished(BadResponse):
    """A thinking model used the whole ``max_tokens`` budget thinking and gave no answer.

    ``completion`` is what came back (its ``reasoning``, usage and timings).
    """

    def __init__(self, message: str, *, url: str, status: int | None = None, completion: Any = None) -> None:
        super().__init__(message, url=url, status=status)
        self.completion = completion

    @property
    def permanent(self) -> bool:
        return True  # the same settings get the same answer: asking again will not help
