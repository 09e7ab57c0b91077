"""A small real HTTP server that answers the way thinking models' servers do.

Three documented shapes of reasoning, streamed (SSE) or whole:

- ``"vllm"``: a ``reasoning_content`` field beside ``content`` (vLLM with a reasoning parser,
  llama.cpp, SGLang); thinking is switched by ``chat_template_kwargs: {"enable_thinking": …}``;
- ``"ollama"``: a ``reasoning`` field (Ollama's ``/v1``); switched off by ``reasoning_effort:
  "none"`` or ``think: false``;
- ``"tags"``: ``<think>…</think>`` left at the start of ``content`` (a server without a parser).

``refuse`` names request fields the server refuses with a 400 that names them, as OpenAI does for
arguments it does not know; ``budget_tokens`` makes the model think for longer than ``max_tokens``
allows (the answer ends in the middle of its thinking, ``finish_reason: "length"``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.servers.llama import LlamaServer
from tests.servers.threaded import JsonHandler, ThreadedServer

__all__ = ["ThinkingServer", "thinking_llama_server"]

#: A ChatML template that knows about reasoning the way Qwen3's does: an assistant message's
#: ``reasoning_content`` goes between ``<think>`` tags (from which llama.cpp learns the markers and
#: parses them out of the output), and ``enable_thinking: false`` closes an empty thought in the
#: prompt.
THINKING_TEMPLATE = """\
{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\\n' }}
{%- if message['role'] == 'assistant' and message.get('reasoning_content') -%}
{{- '<think>' + message['reasoning_content'] + '</think>' }}
{%- endif -%}
{%- if message['content'] is string -%}{{ message['content'] }}{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' }}
{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think></think>' }}{%- endif -%}
{%- endif -%}
"""

#: The generated model's words are random: a server-wide grammar makes it think, then answer.
THINKING_GRAMMAR = 'root ::= "<think>" [a-z ]{8,30} "</think>" [a-z ]{4,20}\n'


def thinking_llama_server(
    binary: Path,
    model: Path,
    mmproj: Path,
    workdir: Path,
    *,
    parse: bool = True,
    log_path: Path | None = None,
) -> LlamaServer:
    """A (not yet started) llama-server whose model always thinks first. ``parse=False`` starts it
    with ``--reasoning-format none``: the ``<think>`` tags stay in ``content``."""
    template, grammar = workdir / "thinking.jinja", workdir / "thinking.gbnf"
    template.write_text(THINKING_TEMPLATE)
    grammar.write_text(THINKING_GRAMMAR)
    args = ["--chat-template-file", str(template), "--grammar-file", str(grammar)]
    args += ["--reasoning-format", "deepseek" if parse else "none"]
    return LlamaServer(binary, model, mmproj, alias="tiny-thinker", extra_args=args, log_path=log_path)


STYLES = ("vllm", "ollama", "tags")


class ThinkingServer(ThreadedServer):
    def __init__(
        self,
        style: str,
        *,
        reasoning: str = "The user wants a caption. I see shapes.",
        answer: str = "Four coloured squares.",
        refuse: tuple[str, ...] = (),
        budget_tokens: int = 0,
        models: tuple[str, ...] = ("thinker",),
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}")
        self.style = style
        self.reasoning = reasoning
        self.answer = answer
        self.refuse = refuse
        self.budget_tokens = budget_tokens
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        super().__init__()

    def thinks(self, body: dict[str, Any]) -> bool:
        """Whether this request leaves thinking on, by this server's own switch."""
        if self.style == "ollama":
            return body.get("reasoning_effort") != "none" and body.get("think") is not False
        kwargs = body.get("chat_template_kwargs")
        return not (isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False)

    def pieces(self, body: dict[str, Any]) -> tuple[list[str], list[str], str]:
        """The reasoning and answer pieces (one per token) and the finish reason."""
        thoughts = [word + " " for word in self.reasoning.split()] if self.thinks(body) else []
        answer = [word + " " for word in self.answer.split()]
        answer[-1] = answer[-1].rstrip()
        if thoughts:
            thoughts[-1] = thoughts[-1].rstrip()
        budget = int(body.get("max_tokens") or 100)
        if self.budget_tokens and thoughts:
            thoughts = (thoughts * (self.budget_tokens // len(thoughts) + 1))[: self.budget_tokens]
        if len(thoughts) >= budget:
            return thoughts[:budget], [], "length"
        return thoughts, answer[: budget - len(thoughts)], "stop"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": m} for m in owner.models]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with owner._lock:
                    owner.requests.append(body)
                for name in owner.refuse:
                    if name in body:
                        owner.refused.append(name)
                        message = f"Unrecognized request argument supplied: {name}"
                        self._json(400, {"error": {"message": message, "type": "invalid_request_error"}})
                        return
                thoughts, answer, finish = owner.pieces(body)
                if body.get("stream"):
                    self._stream(thoughts, answer, finish, body)
                else:
                    self._json(200, self._whole(thoughts, answer, finish, body))

            def _whole(
                self, thoughts: list[str], answer: list[str], finish: str, body: dict[str, Any]
            ) -> dict[str, Any]:
                message: dict[str, Any] = {"role": "assistant"}
                reasoning, content = "".join(thoughts), "".join(answer)
                if owner.style == "tags":
                    closed = "</think>" if finish == "stop" else ""
                    message["content"] = f"<think>{reasoning}{closed}\n\n{content}" if thoughts else content
                else:
                    message["content"] = content
                    if thoughts:
                        field = "reasoning_content" if owner.style == "vllm" else "reasoning"
                        message[field] = reasoning
                return {
                    "model": body.get("model") or owner.models[0],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(thoughts) + len(answer)},
                }

            def _stream(
                self, thoughts: list[str], answer: list[str], finish: str, body: dict[str, Any]
            ) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
                if owner.style == "tags":
                    if thoughts:
                        # The tags arrive cut across pieces, as tokenizers split them.
                        deltas += [{"content": "<th"}, {"content": "ink>"}]
                        deltas += [{"content": piece} for piece in thoughts]
                        if finish == "stop":
                            deltas += [{"content": "</thi"}, {"content": "nk>\n\n"}]
                else:
                    field = "reasoning_content" if owner.style == "vllm" else "reasoning"
                    deltas += [{field: piece, "content": None} for piece in thoughts]
                deltas += [{"content": piece} for piece in answer]
                model = body.get("model") or owner.models[0]
                for i, delta in enumerate(deltas):
                    last = i == len(deltas) - 1
                    choice = {"index": 0, "delta": delta, "finish_reason": finish if last else None}
                    self._event({"model": model, "choices": [choice]})
                usage = {"prompt_tokens": 10, "completion_tokens": len(thoughts) + len(answer)}
                self._event({"model": model, "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

        return Handler
