"""What a thinking model thought, kept apart from what it answered.

Servers hand reasoning back in three shapes: a field of its own beside ``content``
(``reasoning_content``: llama.cpp, vLLM, SGLang; ``reasoning``: Ollama's ``/v1``, OpenRouter), or
tags left inside ``content`` (``<think>…</think>`` when the server does not parse them). This
module reads all three, whole or streamed, and says which request fields switch thinking off or
on for each kind of server.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "REASONING_FIELDS",
    "THINKING_FIELDS",
    "ContentSplitter",
    "Split",
    "reasoning_of",
    "split_thoughts",
    "thinking_fields",
]

#: Where servers put reasoning beside ``content`` (a message or a stream delta), first match wins.
REASONING_FIELDS = ("reasoning_content", "reasoning")

#: Tag pairs models leave in ``content`` when the server does not take them out: most thinking
#: models (Qwen3, DeepSeek-R1, GLM, MiMo) use ``<think>``; Kimi-VL writes its own brackets.
TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"), ("\u25c1think\u25b7", "\u25c1/think\u25b7"))

#: The request fields that switch thinking, one per kind of server. Each is optional: a server
#: that refuses one by name gets the request again without it, and never again (``VLMClient``).
#: ``chat_template_kwargs``: llama.cpp, vLLM and SGLang pass it to the model's chat template
#: (Qwen3 and GLM read ``enable_thinking``); ``reasoning_effort``: the OpenAI API, and the switch
#: Ollama's ``/v1`` honours; ``think``: Ollama's own switch.
THINKING_FIELDS = ("chat_template_kwargs", "reasoning_effort", "think")


def thinking_fields(thinking: bool | None, *, leave_out: Collection[str] = ()) -> dict[str, Any]:
    """The request fields for ``thinking`` (None: the server's default, no fields), without the
    ones in ``leave_out`` (those a server refused)."""
    if thinking is None:
        return {}
    fields: dict[str, Any] = {"chat_template_kwargs": {"enable_thinking": thinking}, "think": thinking}
    if not thinking:
        # "On" leaves the effort to the server; there is no effort that means "on" everywhere.
        fields["reasoning_effort"] = "none"
    return {name: value for name, value in fields.items() if name not in leave_out}


def reasoning_of(part: Mapping[str, Any]) -> str:
    """The reasoning text in a message or stream delta ("" when there is none)."""
    for name in REASONING_FIELDS:
        value = part.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass(frozen=True)
class Split:
    """``content`` taken apart: what was thought and what was answered."""

    reasoning: str
    answer: str
    #: Thinking began and has not ended (yet, or ever: the token budget ran out inside it).
    thinking: bool = False


def split_thoughts(content: str, *, final: bool = True) -> Split:
    """Take ``<think>…</think>`` (or another pair of :data:`TAGS`) out of ``content``.

    ``final=False`` is for text still streaming in: a tag cut in two at the end is held back
    rather than shown as answer. Content that closes a tag it never opened (chat templates that
    open it in the prompt) has its reasoning before the closing tag.
    """
    text = content.lstrip()
    for opening, closing in TAGS:
        if text.startswith(opening):
            inside = text[len(opening) :]
            end = inside.find(closing)
            if end < 0:
                return Split(_hold_back(inside, closing, final).strip(), "", thinking=True)
            return Split(inside[:end].strip(), inside[end + len(closing) :].lstrip())
        if opening.startswith(text) and text:
            # "<thi": the start of a tag (the stream goes on, or max_tokens cut it there).
            return Split("", "", thinking=True)
    for _opening, closing in TAGS:
        end = text.find(closing)
        if end >= 0:
            return Split(text[:end].strip(), text[end + len(closing) :].lstrip())
    return Split("", content if final else _hold_back(content, TAGS[0][1], final))


def _hold_back(text: str, tag: str, final: bool) -> str:
    """``text`` without a trailing beginning of ``tag`` (it may be the tag, cut by the stream)."""
    if final:
        return text
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return text[:-size]
    return text


class ContentSplitter:
    """Streamed ``content`` pieces in, reasoning and answer so far out (tags taken out)."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self.split = Split("", "")

    def feed(self, piece: str) -> Split:
        self._content.append(piece)
        # Re-split the whole text: answers are short, and a tag may span pieces.
        self.split = split_thoughts("".join(self._content), final=False)
        return self.split

    def finish(self) -> Split:
        self.split = split_thoughts("".join(self._content), final=True)
        return self.split
