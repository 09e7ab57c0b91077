"""What a session keeps: one record per request, answered or failed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ._client import Usage

__all__ = ["Answer"]


@dataclass(frozen=True)
class Answer:
    """One request about one frame: the answer text, or the error that stopped it."""

    seq: int
    text: str
    prompt: str
    model: str | None
    max_tokens: int
    temperature: float
    #: Seconds spent in the HTTP request to the server.
    latency_s: float
    #: Seconds from asking the browser for the frame to having the answer.
    total_s: float
    #: Seconds from sending the request to the first streamed token (None when not streamed).
    first_token_s: float | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    frame_width: int = 0
    frame_height: int = 0
    #: The JPEG the model saw (kept so a session can be inspected and replayed).
    jpeg: bytes = field(default=b"", repr=False)
    #: Readable reason when the request failed; ``text`` is then empty.
    error: str | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.error is None
