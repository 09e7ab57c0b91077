"""OpenAI-compatible HTTP calls (``/v1/models``, ``/v1/chat/completions``) through httpx.

This module knows HTTP and nothing about widgets or browsers. The API key lives only here, in the
httpx client's default headers: never on an attribute that is printed, synced or logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ._chat import (
    SCHEMA_FORMATS,
    ChatParams,
    Completion,
    ServerTiming,
    TokenLogprob,
    Usage,
    build_chat_body,
    schema_format_of,
)
from ._errors import (
    AnswerCutOff,
    AnswerTooLong,
    AuthenticationError,
    BadResponse,
    ImagesNotSupported,
    ServerHTTPError,
    ServerUnreachable,
    VLMError,
)
from ._reasoning import THINKING_FIELDS, ContentSplitter, reasoning_of, split_thoughts
from ._schema import Schema
from ._sse import iter_sse

# The request and answer types (ChatParams, Completion, Usage…) belong to _chat: import them there.
__all__ = ["VLMClient", "normalize_base_url", "parse_models"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=5.0)

# An answer may run to max_tokens; a server that ignores it is cut off well past that. Streams are
# counted in text pieces (servers send a token or a few per event) and characters (a token is
# rarely over 16 characters); a one-piece body in bytes (JSON escapes take up to 6 per character).
_PIECES_PER_TOKEN, _CHARS_PER_TOKEN, _BODY_BYTES_PER_TOKEN = 2, 32, 256
_SLACK_PIECES, _SLACK_CHARS, _SLACK_BODY_BYTES = 16, 256, 256 * 1024
#: Error bodies are read up to this size: the message shows 300 characters of them anyway.
_ERROR_BODY_LIMIT = 64 * 1024
#: A Retry-After longer than this is taken as this (the message says how long it asked).
RETRY_AFTER_CAP_S = 3600.0

# Phrases servers use when a request carries an image they cannot take (llama.cpp without
# --mmproj, text-only models on vLLM/Ollama, gateways). Matched case-insensitively.
_NO_IMAGE_PHRASES = (
    "image input is not supported",
    "unsupported content part type",
    "does not support image",
    "does not support multimodal",
    "not a multimodal model",
    "mmproj",
    "vision is not supported",
    "no image support",
)


# Words in a 400/422 refusal that blame the response_format (llama.cpp before json_schema support:
# 'response_format type must be one of "text" or "json_object"'; gateways: 'json_schema is not
# supported'; llama.cpp for a schema its grammar converter cannot take: 'JSON schema conversion
# failed').
_FORMAT_REFUSAL_WORDS = ("response_format", "response format", "json_schema", "json_object", "schema")


def normalize_base_url(url: str) -> str:
    """Return the server root for ``url``, accepting it with or without a trailing ``/v1``.

    ``http://localhost:11434/v1`` (Ollama) and ``http://localhost:8080`` (llama.cpp) both work; the
    result never ends in ``/`` or ``/v1``. Raises ``ValueError`` with a usable message otherwise.
    """
    text = (url or "").strip()
    if not text:
        raise ValueError("base_url is empty: give the server root, e.g. http://localhost:8080")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url {redact_url(text)!r} is not an http(s) URL: "
            "give the server root, e.g. http://localhost:8080 or http://localhost:11434/v1"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def parse_models(payload: object) -> list[str]:
    """Model ids from a ``/v1/models`` body: OpenAI's ``{"data": [{"id": …}]}`` or a bare list."""
    items: object = payload
    if isinstance(payload, dict):
        items = payload.get("data", payload.get("models"))
    if not isinstance(items, list):
        raise ValueError("expected a list of models or an object with a 'data' list")
    ids: list[str] = []
    for item in items:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict):
            # Ollama's native list uses "name"/"model"; OpenAI-shaped lists use "id".
            ident = item.get("id") or item.get("model") or item.get("name")
            if isinstance(ident, str):
                ids.append(ident)
    return ids


def _decode_json(body: bytes) -> Any:
    """JSON from a body; bytes that are not UTF-8 become U+FFFD instead of failing the answer."""
    return json.loads(body.decode("utf-8", errors="replace"))


def _server_message(body: bytes, reason: str) -> str:
    """The human part of an error body, whatever shape the server uses; short."""
    try:
        payload = _decode_json(body)
    except json.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:300] if text else reason
    message: object = payload
    if isinstance(payload, dict):
        message = payload.get("error", payload.get("detail", payload.get("message", payload)))
        if isinstance(message, dict):
            message = message.get("message", message)
    return str(message)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks to wait (``Retry-After`` as seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The body, read up to ``limit`` bytes; True when there was more (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _too_long(max_tokens: int, pieces: int, chars: int) -> bool:
    return (
        pieces > max_tokens * _PIECES_PER_TOKEN + _SLACK_PIECES
        or chars > max_tokens * _CHARS_PER_TOKEN + _SLACK_CHARS
    )


def _as_timeout(timeout: httpx.Timeout | float) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return httpx.Timeout(connect=min(5.0, timeout), read=timeout, write=30.0, pool=5.0)


class VLMClient:
    """Talks to one OpenAI-compatible server. Create it, await its calls, ``aclose()`` it.

    ``timeout``: an ``httpx.Timeout``, or the seconds to wait for the server's next bytes (connect
    at most 5 s). ``transport`` is injectable (e.g. ``httpx.MockTransport``) for narrow unit tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self._timeout = _as_timeout(timeout)
        # Whether a key is sent (for messages); the key itself stays in the httpx headers only.
        self._has_key = bool(api_key)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self._timeout, transport=transport
        )
        # Set once a server refused stream_options; later requests leave it out.
        self._no_stream_options = False
        # Thinking switches (THINKING_FIELDS) this server refused by name; left out from then on.
        self._refused_fields: set[str] = set()
        # Per schema (its text): index into SCHEMA_FORMATS, raised each time the server refuses a
        # form, and the server's words. Per schema, as servers refuse either every json_schema
        # (older llama.cpp, some gateways) or just the one their grammar converter cannot take.
        self._schema_levels: dict[str, int] = {}
        self._schema_refusals: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"VLMClient(base_url={redact_url(self.base_url)!r})"

    def schema_format(self, schema: Schema) -> str:
        """How this client sends ``schema`` now: ``json_schema`` until the server refused it (see
        :data:`SCHEMA_FORMATS`)."""
        return SCHEMA_FORMATS[self._schema_levels.get(schema.text, 0)]

    def schema_refusal(self, schema: Schema) -> str | None:
        """The server's words when it last refused a form of ``schema`` (None if it never did),
        e.g. why llama.cpp could not turn it into a grammar."""
        return self._schema_refusals.get(schema.text)

    def url(self, path: str) -> str:
        """The full, printable URL of an API path such as ``/v1/models``."""
        return redact_url(self.base_url + path)

    async def aclose(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def list_models(self) -> list[str]:
        """Ids from ``GET /v1/models`` (both response shapes)."""
        response = await self._request("GET", "/v1/models")
        try:
            return parse_models(_decode_json(response.content))
        except ValueError as exc:
            raise BadResponse(
                f"{self.url('/v1/models')} did not return a model list ({exc}); "
                "is base_url an OpenAI-compatible server?",
                url=self.url("/v1/models"),
                status=response.status_code,
            ) from exc

    async def chat(
        self,
        params: ChatParams,
        images: Sequence[bytes] = (),
        *,
        on_text: Callable[[str], None] | None = None,
        on_reasoning: Callable[[str], None] | None = None,
    ) -> Completion:
        """One chat completion about ``images``.

        With ``params.stream`` the answer arrives as server-sent events and ``on_text`` gets the
        text so far after each piece (``on_reasoning`` the reasoning so far, when the model thinks
        and the server sends it apart); cancelling the call closes the connection. With
        ``params.schema`` a server that refuses the schema's form is asked again with the next
        one (``Completion.schema_format`` says which was used); the answer is not validated here.
        A server that keeps sending far past ``max_tokens`` is cut off (``AnswerTooLong``).
        """
        path = "/v1/chat/completions"
        url = self.url(path)
        started = time.perf_counter()
        used: list[str | None] = [None]

        def body() -> dict[str, Any]:
            level = self.schema_format(params.schema) if params.schema is not None else "json_schema"
            used[0] = level if params.schema is not None else None
            return build_chat_body(
                params,
                images,
                usage_in_stream=not self._no_stream_options,
                schema_format=level,
                leave_out=self._refused_fields,
            )

        async with self._open(path, body, has_images=bool(images), schema=params.schema) as response:
            is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
            if params.stream and is_sse:
                completion = await self._read_stream(
                    response, url, started, params.max_tokens, on_text, on_reasoning
                )
                return dataclasses.replace(completion, schema_format=used[0])
            limit = params.max_tokens * _BODY_BYTES_PER_TOKEN + _SLACK_BODY_BYTES
            async with self._transport_errors(url, during="the answer"):
                content, cut = await _read_capped(response, limit)
            if cut:
                raise AnswerTooLong(
                    f"{url} sent more than {limit // 1024} KB for an answer of at most "
                    f"{params.max_tokens} tokens, so the client stopped reading; the server ignores "
                    "max_tokens: set a limit on the server (llama-server: --n-predict) or use one "
                    "that honours it",
                    url=url,
                    status=response.status_code,
                )
        completion = self._parse_completion(content, response, url, time.perf_counter() - started)
        if _too_long(params.max_tokens, 1, len(completion.text)):
            keep = params.max_tokens * _CHARS_PER_TOKEN + _SLACK_CHARS
            raise self._too_long_error(url, params.max_tokens, len(completion.text), completion.text[:keep])
        if on_text is not None and completion.text:
            on_text(completion.text)
        return dataclasses.replace(completion, schema_format=used[0])

    @staticmethod
    def _too_long_error(url: str, max_tokens: int, chars: int, partial: str) -> AnswerTooLong:
        return AnswerTooLong(
            f"{url} sent {chars} characters for an answer of at most {max_tokens} tokens, so the "
            "client stopped reading (the text so far is kept); the server ignores max_tokens: set "
            "a limit on the server (llama-server: --n-predict) or use one that honours it",
            url=url,
            status=200,
            partial_text=partial,
        )

    @contextlib.asynccontextmanager
    async def _open(
        self,
        path: str,
        make_body: Callable[[], dict[str, Any]],
        *,
        has_images: bool,
        schema: Schema | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """POST ``make_body()`` and yield the response with its body unread; errors become
        VLMErrors. A refusal of an optional field is remembered and the body made again without it
        (each refusal moves a setting one way, so this ends)."""
        url = self.url(path)
        body = make_body()
        while True:
            response = await self._send(path, body, url)
            try:
                if response.is_success:
                    yield response
                    return
                async with self._transport_errors(url, during="the error answer"):
                    content, _ = await _read_capped(response, _ERROR_BODY_LIMIT)
                detail = _server_message(content, response.reason_phrase)
                if self._step_back(body, response.status_code, detail, schema):
                    body = make_body()
                    continue
                raise self._status_error(response, detail, url, has_images)
            finally:
                await response.aclose()

    def _step_back(self, body: dict[str, Any], status: int, detail: str, schema: Schema | None) -> bool:
        """True when ``detail`` refuses an optional part of ``body`` that can be left out or sent in
        a plainer form; the client then remembers it for every later request."""
        # Some servers refuse the stream_options field; later requests leave it out.
        if "stream_options" in body and "stream_options" in detail:
            self._no_stream_options = True
            return True
        if status in (400, 422):
            for name in THINKING_FIELDS:
                if name in body and _names_field(detail, name):
                    self._refused_fields.add(name)
                    return True
        used = schema_format_of(body)
        words = detail.lower()
        if (
            schema is not None
            and used is not None
            and status in (400, 422)
            and any(w in words for w in _FORMAT_REFUSAL_WORDS)
        ):
            # max(): with several requests in flight, each refusal steps back from what it sent.
            level = max(self._schema_levels.get(schema.text, 0), SCHEMA_FORMATS.index(used) + 1)
            self._schema_levels[schema.text] = level
            self._schema_refusals[schema.text] = detail
            return True
        return False

    async def _send(self, path: str, body: dict[str, Any], url: str) -> httpx.Response:
        """Send and return the response with its body unread (the caller closes it)."""
        request = self._http.build_request("POST", path, json=body)
        async with self._transport_errors(url):
            try:
                return await self._http.send(request, stream=True)
            except httpx.RemoteProtocolError as exc:
                # A kept-alive connection the server had already closed (llama-server does this
                # now and then after a streamed answer): nothing was processed, so one more try on
                # a fresh connection is safe.
                if "without sending a response" not in str(exc):
                    raise
            return await self._http.send(request, stream=True)

    async def _read_stream(
        self,
        response: httpx.Response,
        url: str,
        started: float,
        max_tokens: int,
        on_text: Callable[[str], None] | None,
        on_reasoning: Callable[[str], None] | None = None,
    ) -> Completion:
        """Collect an SSE answer: stop at ``[DONE]``, raise on error events, and stop reading a
        server that goes on far past ``max_tokens``."""
        parts: list[str] = []
        thoughts: list[str] = []  # reasoning sent in a field of its own
        tokens: list[TokenLogprob] = []
        splitter = ContentSplitter()  # reasoning left in content as <think> tags
        answer = ""
        chars = 0
        model: str | None = None
        finish: str | None = None
        usage: Usage | None = None
        server: ServerTiming | None = None
        first: float | None = None
        first_thought: float | None = None
        received = [0]  # characters so far, for the message when the stream breaks off

        def partial() -> str:
            return splitter.split.answer  # what had arrived, should the stream break off

        async with self._transport_errors(
            url, during="the answer stream", received=received, partial=partial
        ):
            done = False
            async for event, data in iter_sse(response.aiter_lines()):
                # Read on to the end of the body after [DONE]: breaking off would make httpx drop
                # the connection, and the next frame would pay a new connect (a TLS handshake on
                # https servers).
                if done or data.strip() == "[DONE]":
                    done = True
                    continue
                chunk = _stream_chunk(event, data, url, response.status_code)
                if isinstance(chunk.get("model"), str):
                    model = chunk["model"]
                usage = Usage.from_payload(chunk.get("usage")) or usage
                server = ServerTiming.from_payload(chunk.get("timings")) or server
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict):
                        continue
                    finish = choice.get("finish_reason") or finish
                    if choice.get("logprobs"):
                        tokens.extend(TokenLogprob.parse_all(choice["logprobs"]))
                    delta = choice.get("delta")
                    if not isinstance(delta, dict):
                        continue
                    thought = reasoning_of(delta)
                    content = delta.get("content")
                    if not thought and not content:
                        continue
                    if thought:
                        thoughts.append(thought)
                    if content:
                        parts.append(str(content))
                        splitter.feed(parts[-1])
                    chars += len(thought) + len(str(content or ""))
                    received[0] = chars
                    if _too_long(max_tokens, len(parts) + len(thoughts), chars):
                        # Leaving the loop closes the response: the server stops sending.
                        raise self._too_long_error(url, max_tokens, chars, splitter.split.answer)
                    split = splitter.split
                    if first_thought is None and (thoughts or split.thinking or split.reasoning):
                        first_thought = time.perf_counter() - started
                    if thought and on_reasoning is not None:
                        on_reasoning(_joined("".join(thoughts), split.reasoning))
                    if split.answer != answer:
                        answer = split.answer
                        if first is None:
                            first = time.perf_counter() - started
                        if on_text is not None:
                            on_text(answer)
        split = splitter.finish()
        if not done and finish is None:
            # The server (or a gateway) closed the connection mid-answer without an error: what
            # came is a fragment, never to be taken for the whole answer.
            got = f" after {chars} characters" if chars else ""
            raise AnswerCutOff(
                f"{url} ended the answer stream{got} without [DONE] or a finish reason (the "
                "connection was closed early: a gateway or proxy timeout, or a server restart); "
                "the text so far is kept as partial, not as an answer",
                url=url,
                status=response.status_code,
                partial_text=split.answer,
            )
        return Completion(
            text=split.answer,
            model=model,
            finish_reason=finish,
            usage=usage,
            latency_s=time.perf_counter() - started,
            first_token_s=first,
            server=server,
            reasoning=_joined("".join(thoughts), split.reasoning),
            first_reasoning_s=first_thought,
            thinking_unfinished=split.thinking,
            logprobs=tuple(tokens),
        )

    def _parse_completion(
        self, content: bytes, response: httpx.Response, url: str, latency: float
    ) -> Completion:
        status = response.status_code
        try:
            payload = _decode_json(content)
        except json.JSONDecodeError as exc:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            start = content[:60].decode("utf-8", errors="replace")
            raise BadResponse(
                f"{url} answered {status} with a body that is not JSON ({kind}, starting {start!r}); "
                "is base_url an OpenAI-compatible server (its root, e.g. http://localhost:8080)?",
                url=url,
                status=status,
            ) from exc
        try:
            choice = payload["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            keys = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
            raise BadResponse(
                f"{url} answered {status} without an OpenAI-style 'choices' list (got {keys}); "
                "is base_url an OpenAI-compatible server (its root, e.g. http://localhost:8080)?",
                url=url,
                status=status,
            ) from exc
        split = split_thoughts(str(text))
        return Completion(
            text=split.answer,
            model=payload.get("model") if isinstance(payload.get("model"), str) else None,
            finish_reason=choice.get("finish_reason"),
            usage=Usage.from_payload(payload.get("usage")),
            latency_s=latency,
            server=ServerTiming.from_payload(payload.get("timings")),
            reasoning=_joined(reasoning_of(message), split.reasoning),
            thinking_unfinished=split.thinking,
            logprobs=TokenLogprob.parse_all(choice.get("logprobs")),
        )

    @contextlib.asynccontextmanager
    async def _transport_errors(
        self,
        url: str,
        during: str = "",
        received: list[int] | None = None,
        partial: Callable[[], str] | None = None,
    ) -> AsyncIterator[None]:
        """Turn httpx's transport failures into ServerUnreachable with the URL and what to do."""
        if self._http.is_closed:
            # A late call (a model list asked for just before the panel closed or the base URL
            # changed) ends quietly as an error, not as httpx's RuntimeError in the kernel log.
            raise VLMError(f"not sent to {url}: this client was closed", url=url)
        try:
            yield
        except httpx.ConnectTimeout as exc:
            raise ServerUnreachable(
                f"cannot reach {url}: no answer to the connection attempt within "
                f"{self._timeout.connect:g} s (ConnectTimeout); is the server running, and are "
                "base_url's host and port right? (a firewall may be dropping the connection)",
                url=url,
            ) from exc
        except httpx.ReadTimeout as exc:
            what = during or "the answer"
            raise ServerUnreachable(
                f"{url} sent nothing for {self._timeout.read:g} s while waiting for {what} "
                "(ReadTimeout); the server may be overloaded or hung: check it (its log, its load), "
                "or allow slow models more time with timeout=",
                url=url,
            ) from exc
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"{url} timed out ({type(exc).__name__}); the server may be overloaded or hung",
                url=url,
            ) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            if during:
                got = f" after {received[0]} characters" if received and received[0] else ""
                raise AnswerCutOff(
                    f"{url} broke off {during}{got} ({reason}); the server may have crashed or "
                    "restarted: see its log",
                    url=url,
                    partial_text=partial() if partial is not None else "",
                ) from exc
            raise ServerUnreachable(
                f"cannot reach {url} ({reason}); is the server running and is base_url right?",
                url=url,
            ) from exc

    async def _request(self, method: str, path: str) -> httpx.Response:
        url = self.url(path)
        async with self._transport_errors(url):
            response = await self._http.request(method, path)
        if response.is_success:
            return response
        detail = _server_message(response.content[:_ERROR_BODY_LIMIT], response.reason_phrase)
        raise self._status_error(response, detail, url, has_images=False)

    def _status_error(self, response: httpx.Response, detail: str, url: str, has_images: bool) -> VLMError:
        status = response.status_code
        said = (
            f"{status} {response.reason_phrase}: {detail}"
            if response.reason_phrase
            else f"{status}: {detail}"
        )
        if status in (401, 403):
            fix = (
                "the key sent was not accepted: set api_key= (or OPENAI_API_KEY, or the panel's API "
                "key box) to a key this server accepts"
                if self._has_key
                else "no API key was sent: set api_key=, the OPENAI_API_KEY environment variable or "
                "the panel's API key box"
            )
            return AuthenticationError(f"{url} refused the request ({said}); {fix}", url=url, status=status)
        if has_images and any(p in detail.lower() for p in _NO_IMAGE_PHRASES):
            return ImagesNotSupported(
                f"this server cannot take images ({url} answered {said}); "
                "start it with --mmproj or choose a vision model",
                url=url,
                status=status,
            )
        if status == 404 and "model" in detail.lower():
            return ServerHTTPError(
                f"{url} does not know the model asked for ({said}); choose one the server lists "
                "(the panel's Model list and Refresh, GET /v1/models), or model=None for its first",
                url=url,
                status=status,
            )
        if status == 404:
            return ServerHTTPError(
                f"{url} was not found ({said}); check base_url (the server root such as "
                "http://localhost:8080, or one ending in /v1) and the model name",
                url=url,
                status=status,
            )
        wait = _retry_after(response)
        if wait is not None:
            capped = min(wait, RETRY_AFTER_CAP_S)
            asked = f"{wait:g} s" if wait == capped else f"{wait:g} s (waiting {capped:g} s)"
            return ServerHTTPError(
                f"{url} answered {said}; the server asks to wait {asked} (Retry-After): live mode "
                "sends nothing to it before then",
                url=url,
                status=status,
                retry_after=capped,
            )
        if status == 429:
            hint = "too many requests: raise the interval or lower max_in_flight (live mode backs off)"
        elif status in (502, 503, 504):
            hint = "the server (or a proxy in front of it) is busy, starting or down; live mode retries"
        elif status >= 500:
            hint = "the server failed on this request: its log says why"
        else:
            hint = "the server refused the request as sent"
        return ServerHTTPError(f"{url} answered {said}; {hint}", url=url, status=status)


def _names_field(detail: str, name: str) -> bool:
    """Whether a refusal names request field ``name`` (as a word: "think" is not "thinking")."""
    if name == "chat_template_kwargs" and "enable_thinking" in detail:
        return True
    return re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])", detail) is not None


def _joined(*texts: str) -> str:
    return "\n".join(text for text in texts if text)


def _stream_chunk(event: str, data: str, url: str, status: int) -> dict[str, Any]:
    """One SSE event's JSON object; error events (either style) raise with the server's words."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BadResponse(
            f"{url} sent a stream event that is not JSON: {data[:80]!r}; is base_url an "
            "OpenAI-compatible server?",
            url=url,
            status=status,
        ) from exc
    if event == "error" or (isinstance(chunk, dict) and "error" in chunk):
        message = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
        if isinstance(message, dict):
            message = message.get("message", message)
        raise ServerHTTPError(
            f"{url} reported an error while answering: {str(message)[:300]}", url=url, status=status
        )
    return chunk if isinstance(chunk, dict) else {}
