"""What a session keeps: one record per request, answered or failed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ._annotate import annotate
from ._chat import ChatParams, TokenLogprob, Usage
from ._shapes import Shape

__all__ = ["Answer", "Timing"]


@dataclass(frozen=True)
class Timing:
    """Where one answer's time went, in seconds."""

    #: Live mode: waiting for a request turn (the interval, backoff or a busy slot).
    wait_s: float
    #: Browser: drawing the video frame onto a canvas.
    capture_s: float
    #: Browser: encoding the JPEG.
    encode_s: float
    #: The comm round trip for the frame, less the browser's drawing and encoding.
    transfer_s: float
    #: HTTP: from sending the request to the first streamed token (None when not streamed).
    first_token_s: float | None
    #: HTTP: from sending the request to the last token.
    http_s: float
    #: From asking for the frame to having the whole answer.
    total_s: float
    #: From having the whole answer to the browser showing it. The page reports it for at most
    #: two answers a second (each report costs a message); None for the others.
    display_s: float | None = None
    #: The server's own prompt processing and generation times, where it reports them (llama.cpp's
    #: ``timings``); the rest of ``http_s`` is the network and the server's own overhead.
    server_prefill_s: float | None = None
    server_decode_s: float | None = None
    #: HTTP: from sending the request to the first reasoning token of a thinking model (streamed;
    #: ``first_token_s`` is then the first token of the answer proper).
    first_reasoning_s: float | None = None

    @property
    def model_s(self) -> float | None:
        """The model's own time (prefill + decode), where the server reports it."""
        if self.server_prefill_s is None or self.server_decode_s is None:
            return None
        return self.server_prefill_s + self.server_decode_s

    def as_dict(self) -> dict[str, float | None]:
        """The phases by name, in seconds."""
        return {
            "wait_s": self.wait_s,
            "capture_s": self.capture_s,
            "transfer_s": self.transfer_s,
            "first_token_s": self.first_token_s,
            "http_s": self.http_s,
            "total_s": self.total_s,
            "encode_s": self.encode_s,
            "display_s": self.display_s,
            "server_prefill_s": self.server_prefill_s,
            "server_decode_s": self.server_decode_s,
            "first_reasoning_s": self.first_reasoning_s,
        }


@dataclass(frozen=True)
class Answer:
    """One request about one frame: the answer text, or the error that stopped it."""

    seq: int
    text: str
    #: What the request asked, exactly as sent (a request sent without a model gets the one the
    #: server says answered); a replay sends it again. None only for a record made without one
    #: (e.g. loaded from a row that lacks the request's columns).
    params: ChatParams | None
    #: Seconds spent in the HTTP request to the server.
    latency_s: float
    #: Seconds from asking the browser for the frame to having the answer.
    total_s: float
    #: Seconds from sending the request to the first streamed token (None when not streamed).
    first_token_s: float | None = None
    usage: Usage | None = None
    #: Prompt tokens the image cost, per frame (prompt tokens minus the text-only prompt's);
    #: None when the server reports no usage.
    image_tokens: int | None = None
    finish_reason: str | None = None
    frame_width: int = 0
    frame_height: int = 0
    #: The JPEG the model saw (the newest one, for multi-frame requests).
    jpeg: bytes = field(default=b"", repr=False)
    #: How many frames the request carried.
    frames_sent: int = 1
    #: Live mode: the frame was asked for ahead of its turn (its round trip overlapped the last
    #: request) rather than after the turn began.
    prefetched: bool = False
    #: Readable reason when the request failed; ``text`` is then empty, or the fragment that had
    #: arrived when the answer stream was cut off (``AnswerCutOff``): never a whole answer.
    error: str | None = None
    #: The exception behind ``error`` (``ask()`` raises it).
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    #: With a schema: the parsed answer (a dict/list, or an instance of the Pydantic model or
    #: dataclass the schema came from); None when it did not validate (see ``data_error``).
    data: Any = field(default=None, compare=False)
    #: With a schema: why the answer is invalid (it is kept, with its text); None when valid.
    data_error: str | None = None
    #: Boxes and points found in the answer, normalized 0–1 to the image sent.
    shapes: tuple[Shape, ...] = ()
    #: Epoch seconds (browser clock) when the frame was grabbed; 0 when there was no frame.
    captured_at: float = 0.0
    #: Where the time went (None when no frame arrived).
    timing: Timing | None = None
    created_at: float = field(default_factory=time.time)
    #: What a thinking model thought before answering ("" for others); never part of ``text``,
    #: never shown over the video.
    reasoning: str = ""
    #: With ``ChatParams.top_logprobs``: the answer's tokens and their log-probabilities.
    logprobs: tuple[TokenLogprob, ...] = field(default=(), repr=False, compare=False)
    #: The model the server says answered (an alias or a gateway's route may name another than
    #: the one asked for, which ``params.model`` keeps for replays); None when it said none.
    served_model: str | None = None

    # The request's settings most often read, as before ``params`` held them all; ``params`` is
    # their only copy.
    @property
    def prompt(self) -> str:
        return self.params.prompt if self.params else ""

    @property
    def model(self) -> str | None:
        """The model that answered, as the server names it (else the one asked for)."""
        return self.served_model or (self.params.model if self.params else None)

    @property
    def max_tokens(self) -> int:
        return self.params.max_tokens if self.params else 0

    @property
    def temperature(self) -> float:
        return self.params.temperature if self.params else 0.0

    @property
    def ok(self) -> bool:
        """True when the request got an answer (``error`` is None)."""
        return self.error is None

    def annotated(self) -> Any:
        """The frame the model saw with this answer's boxes and points drawn (a BGR array, for
        ``cv2.imwrite`` or display); raises ``ValueError`` when the answer has no frame."""
        if not self.jpeg:
            raise ValueError(f"answer #{self.seq} has no frame (it failed before one arrived)")
        return annotate(self.jpeg, self.shapes)
