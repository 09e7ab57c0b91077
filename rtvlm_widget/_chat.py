"""One chat request as data: what is asked (``ChatParams``), the JSON body it becomes, and what
comes back (``Completion``, ``Usage``). No HTTP here: ``_client.py`` sends it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ._reasoning import THINKING_FIELDS, thinking_fields
from ._schema import Schema, schema_instruction

__all__ = [
    "MAX_TOKENS_LIMIT",
    "SCHEMA_FORMATS",
    "TEMPERATURE_RANGE",
    "THINKING_FIELDS",
    "ChatParams",
    "Completion",
    "ServerTiming",
    "TokenLogprob",
    "Usage",
    "build_chat_body",
    "response_format",
    "schema_format_of",
]

#: Bounds ChatParams accepts (OpenAI's temperature range; no server answers 128k tokens per frame).
MAX_TOKENS_LIMIT = 131_072
TEMPERATURE_RANGE = (0.0, 2.0)

#: How a schema can travel, best first; a server that refuses one form gets the next
#: (``VLMClient.schema_format(schema)``). ``json_object_schema`` is llama.cpp's ``json_object``
#: with a ``schema`` beside it (still a grammar there); from it on the prompt also spells out the
#: schema.
SCHEMA_FORMATS = ("json_schema", "json_object_schema", "json_object", "prompt")


@dataclass(frozen=True)
class ChatParams:
    """What to ask: the same for every frame of a live run unless the user changes it."""

    prompt: str
    model: str | None = None
    max_tokens: int = 100
    temperature: float = 0.2
    #: Ask for tokens as they are generated (SSE); servers that answer in one piece still work.
    stream: bool = True
    #: Ask for JSON matching this schema (``to_schema(...)`` makes one from a dict, Pydantic model
    #: or dataclass); sent as ``response_format``. None: free text, and no ``response_format``.
    schema: Schema | None = None
    #: Thinking models: False asks the server to skip thinking (the fastest answers), True to
    #: think, None leaves it to the server (``_reasoning.THINKING_FIELDS`` says how each is asked).
    thinking: bool | None = None
    #: Ask for the log-probabilities of each answer token and of this many alternatives (0: none);
    #: watched conditions read P(yes) from them.
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        # Refused here, with the reason, rather than sent and refused (or obeyed) by the server.
        if not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a string, not {type(self.prompt).__name__}")
        tokens = self.max_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS_LIMIT:
            raise ValueError(
                f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT}, not {tokens!r}"
            )
        low, high = TEMPERATURE_RANGE
        temp = self.temperature
        if (
            isinstance(temp, bool)
            or not isinstance(temp, (int, float))
            or not math.isfinite(temp)
            or not low <= temp <= high
        ):
            raise ValueError(f"temperature must be a number from {low:g} to {high:g}, not {temp!r}")
        top = self.top_logprobs
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
            raise ValueError(f"top_logprobs must be a whole number from 0 to 20, not {top!r}")
        if self.thinking is not None and not isinstance(self.thinking, bool):
            raise TypeError(f"thinking must be True, False or None, not {self.thinking!r}")


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the server for one request."""

    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def from_payload(cls, payload: object) -> Usage | None:
        if not isinstance(payload, dict):
            return None
        prompt, completion = payload.get("prompt_tokens"), payload.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return cls(prompt, completion)
        return None


@dataclass(frozen=True)
class ServerTiming:
    """The server's own account of a request (llama.cpp's ``timings``), in seconds."""

    #: Prompt processing (prefill: the text and the image tokens not already cached).
    prefill_s: float
    #: Token generation (decode).
    decode_s: float
    prompt_tokens: int | None = None
    predicted_tokens: int | None = None

    @property
    def total_s(self) -> float:
        """The model's own time for the request."""
        return self.prefill_s + self.decode_s

    @classmethod
    def from_payload(cls, payload: object) -> ServerTiming | None:
        """``timings`` of a llama.cpp answer (the body, or a stream's last chunk); None otherwise."""
        if not isinstance(payload, dict):
            return None
        prompt_ms, predicted_ms = payload.get("prompt_ms"), payload.get("predicted_ms")
        if not isinstance(prompt_ms, (int, float)) or not isinstance(predicted_ms, (int, float)):
            return None
        if not (_finite(prompt_ms) and _finite(predicted_ms)) or min(prompt_ms, predicted_ms) < 0:
            return None
        prompt_n, predicted_n = payload.get("prompt_n"), payload.get("predicted_n")
        return cls(
            prefill_s=float(prompt_ms) / 1000,
            decode_s=float(predicted_ms) / 1000,
            prompt_tokens=prompt_n if isinstance(prompt_n, int) and not isinstance(prompt_n, bool) else None,
            predicted_tokens=(
                predicted_n if isinstance(predicted_n, int) and not isinstance(predicted_n, bool) else None
            ),
        )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability, and the most likely alternatives there."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse_all(cls, payload: object) -> tuple[TokenLogprob, ...]:
        """The ``logprobs.content`` list of a choice (OpenAI's shape), unusable entries skipped."""
        content = payload.get("content") if isinstance(payload, dict) else None
        out = []
        for item in content if isinstance(content, list) else ():
            if not isinstance(item, dict) or not _finite(item.get("logprob")):
                continue
            top = tuple(
                (str(alt.get("token", "")), float(alt["logprob"]))
                for alt in item.get("top_logprobs") or ()
                if isinstance(alt, dict) and _finite(alt.get("logprob"))
            )
            out.append(cls(str(item.get("token", "")), float(item["logprob"]), top))
        return tuple(out)


@dataclass(frozen=True)
class Completion:
    """One answer from ``/v1/chat/completions``."""

    text: str
    model: str | None
    finish_reason: str | None
    usage: Usage | None
    latency_s: float
    #: Seconds from sending the request to the first token of text (streaming only).
    first_token_s: float | None = None
    #: How the schema went to the server (one of ``SCHEMA_FORMATS``); None without a schema.
    schema_format: str | None = None
    #: The server's own prefill and decode times, where it reports them (llama.cpp).
    server: ServerTiming | None = None
    #: What a thinking model thought before it answered (never part of ``text``).
    reasoning: str = ""
    #: Seconds from sending the request to the first reasoning token (streaming only).
    first_reasoning_s: float | None = None
    #: The answer ended while the model was still thinking (``text`` is then empty).
    thinking_unfinished: bool = False
    #: With ``ChatParams.top_logprobs``: each generated token, its log-probability and the
    #: alternatives' (empty when the server sends none).
    logprobs: tuple[TokenLogprob, ...] = ()

    @property
    def thought_only(self) -> bool:
        """The token budget went to thinking: no answer came, the reasoning did not end."""
        return (
            not self.text.strip()
            and (self.thinking_unfinished or bool(self.reasoning))
            and (self.finish_reason == "length")
        )


def build_chat_body(
    params: ChatParams,
    images: Sequence[bytes],
    mime: str = "image/jpeg",
    *,
    usage_in_stream: bool = True,
    schema_format: str = "json_schema",
    leave_out: Collection[str] = (),
) -> dict[str, Any]:
    """The JSON body for one chat request; images become data URLs (the only base64 step).

    With ``params.schema`` the body asks for JSON in the form ``schema_format`` names (one of
    :data:`SCHEMA_FORMATS`). ``leave_out``: optional fields the server refused (of
    ``THINKING_FIELDS``).
    """
    if schema_format not in SCHEMA_FORMATS:
        raise ValueError(f"schema_format must be one of {', '.join(SCHEMA_FORMATS)}, not {schema_format!r}")
    schema = params.schema
    prompt = params.prompt
    if schema is not None and schema_format != "json_schema":
        prompt = f"{prompt}\n\n{schema_instruction(schema)}" if prompt else schema_instruction(schema)
    content: list[dict[str, Any]] = [
        {
            "type": "image_url",
            "image_url": {"url": f"data:{mime};base64,{base64.b64encode(img).decode('ascii')}"},
        }
        for img in images
    ]
    content.append({"type": "text", "text": prompt})
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": content}],
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "stream": params.stream,
    }
    if params.stream and usage_in_stream:
        body["stream_options"] = {"include_usage": True}
    if params.model:
        body["model"] = params.model
    if schema is not None and schema_format != "prompt":
        body["response_format"] = response_format(schema, schema_format)
    body.update(thinking_fields(params.thinking, leave_out=leave_out))
    if params.top_logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = params.top_logprobs
    return body


def response_format(schema: Schema, schema_format: str) -> dict[str, Any]:
    if schema_format == "json_schema":
        # strict only where OpenAI would accept it: it refuses a non-strict schema with strict on.
        spec = {"name": schema.name, "schema": schema.json_schema, "strict": schema.strict}
        return {"type": "json_schema", "json_schema": spec}
    if schema_format == "json_object_schema":
        return {"type": "json_object", "schema": schema.json_schema}
    return {"type": "json_object"}


def schema_format_of(body: dict[str, Any]) -> str | None:
    """Which of SCHEMA_FORMATS ``body`` uses, if it carries a response_format."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        return "json_schema"
    return "json_object_schema" if "schema" in fmt else "json_object"
