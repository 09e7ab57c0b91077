"""Thinking models: reasoning in every shape servers send it, kept apart from the answer.

Against a scripted server speaking vLLM's, Ollama's and tag-in-content wire formats, streamed and
whole (llama-server's own reasoning output is tested in test_reasoning_llama.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtvlm_widget import ChatParams, History, VLMClient, load_session
from rtvlm_widget._chat import Completion, build_chat_body
from rtvlm_widget._controller import Controller
from rtvlm_widget._reasoning import ContentSplitter, split_thoughts, thinking_fields
from rtvlm_widget._schema import to_schema
from tests.aio import run_async
from tests.servers.thinking import ThinkingServer
from tests.test_controller import StillCamera

REASONING = "The user wants a caption. I see shapes."
ANSWER = "Four coloured squares."


def test_tags_are_taken_out_whole_and_while_streaming() -> None:
    assert split_thoughts("<think>hmm</think>\n\nA cat.").answer == "A cat."
    assert split_thoughts("  <think>hmm</think>A cat.").reasoning == "hmm"
    assert split_thoughts("\u25c1think\u25b7hmm\u25c1/think\u25b7A cat.").answer == "A cat."
    # A template that opened the tag in the prompt: the model's text only closes it.
    assert split_thoughts("hmm, a cat</think>A cat.") == split_thoughts("<think>hmm, a cat</think>A cat.")
    # Cut off inside the thinking (max_tokens), even inside the opening tag itself.
    for cut in ("<think>hmm, let me", "<thi"):
        split = split_thoughts(cut)
        assert split.answer == "" and split.thinking, cut
    assert split_thoughts("A cat.").answer == "A cat." and not split_thoughts("A cat.").thinking

    pieces = ["<", "th", "ink>", "I see", " a cat", "</th", "ink>", "\n", "A", " cat."]
    splitter = ContentSplitter()
    answers = [splitter.feed(piece).answer for piece in pieces]
    assert all("<" not in answer and "see" not in answer for answer in answers), answers
    assert answers[-1] == "A cat." and splitter.finish().reasoning == "I see a cat"
    # A plain answer streams as it comes, but a possible tag at its end waits for the next piece.
    plain = ContentSplitter()
    streamed = [plain.feed(piece).answer for piece in ["A cat", " on a mat", "</"]]
    assert streamed == ["A cat", "A cat on a mat", "A cat on a mat"]
    assert plain.finish().answer == "A cat on a mat</"


def test_thinking_switches_per_server_and_none_sends_nothing() -> None:
    assert thinking_fields(None) == {}
    off = thinking_fields(False)
    assert off == {
        "chat_template_kwargs": {"enable_thinking": False},
        "think": False,
        "reasoning_effort": "none",
    }
    assert thinking_fields(True) == {"chat_template_kwargs": {"enable_thinking": True}, "think": True}
    assert "think" not in thinking_fields(False, leave_out={"think"})
    body = build_chat_body(ChatParams(prompt="p"), [])
    assert not {"chat_template_kwargs", "think", "reasoning_effort"} & set(body)
    with pytest.raises(TypeError, match="thinking must be"):
        ChatParams(prompt="p", thinking="off")  # type: ignore[arg-type]


def _chat(server: ThinkingServer, params: ChatParams) -> tuple[Completion, list[str], list[str]]:
    texts: list[str] = []
    thoughts: list[str] = []

    async def go() -> Completion:
        client = VLMClient(server.base_url)
        try:
            return await client.chat(
                params, [b"\xff\xd8 not a real jpeg"], on_text=texts.append, on_reasoning=thoughts.append
            )
        finally:
            await client.aclose()

    return run_async(go()), texts, thoughts


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("style", ["vllm", "ollama", "tags"])
def test_every_shape_of_reasoning_is_kept_apart_from_the_answer(style: str, stream: bool) -> None:
    with ThinkingServer(style) as server:
        completion, texts, thoughts = _chat(server, ChatParams(prompt="Describe.", stream=stream))
    assert completion.text == ANSWER
    assert completion.reasoning == REASONING
    # What the view is sent while the answer streams holds no reasoning, no tag, not even half a tag.
    assert texts and texts[-1] == ANSWER
    assert all(text and ANSWER.startswith(text) for text in texts), texts
    if stream:
        assert completion.first_reasoning_s is not None and completion.first_token_s is not None
        assert completion.first_reasoning_s <= completion.first_token_s
        if style != "tags":  # a field of its own streams as it comes; tags come with the answer
            assert thoughts and thoughts[-1] == REASONING
    assert not completion.thought_only


@pytest.mark.parametrize("style", ["vllm", "ollama"])
def test_thinking_off_reaches_each_servers_own_switch(style: str) -> None:
    with ThinkingServer(style) as server:
        completion, _, _ = _chat(server, ChatParams(prompt="Describe.", thinking=False))
        assert completion.text == ANSWER and completion.reasoning == ""
        on, _, _ = _chat(server, ChatParams(prompt="Describe.", thinking=True))
        assert on.reasoning == REASONING
    assert server.requests[0]["chat_template_kwargs"] == {"enable_thinking": False}
    assert server.requests[0]["think"] is False and server.requests[0]["reasoning_effort"] == "none"


def test_a_refused_switch_is_left_out_from_then_on_for_that_server() -> None:
    with ThinkingServer("ollama", refuse=("chat_template_kwargs", "think")) as server:

        async def go() -> list[Completion]:
            client = VLMClient(server.base_url)
            try:
                params = ChatParams(prompt="Describe.", thinking=False)
                return [await client.chat(params) for _ in range(3)]
            finally:
                await client.aclose()

        completions = run_async(go())
    assert all(c.text == ANSWER and c.reasoning == "" for c in completions)
    # Each field refused once; the switch the server honours (reasoning_effort) stayed.
    assert sorted(server.refused) == ["chat_template_kwargs", "think"]
    assert [set(r) & {"chat_template_kwargs", "think", "reasoning_effort"} for r in server.requests[-2:]] == [
        {"reasoning_effort"}
    ] * 2


def _ask(server: ThinkingServer, **params: Any) -> Any:
    async def go() -> Any:
        controller = Controller(
            StillCamera(), VLMClient(server.base_url), ChatParams(prompt="Describe.", **params)
        )
        try:
            return await controller.ask()
        finally:
            await controller.aclose()

    return run_async(go())


@pytest.mark.parametrize("style", ["vllm", "ollama", "tags"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_budget_spent_thinking_says_so_and_keeps_the_reasoning(style: str, stream: bool) -> None:
    with ThinkingServer(style, budget_tokens=50) as server:
        answer = _ask(server, max_tokens=12, stream=stream)
    assert not answer.ok and answer.text == ""
    assert "used all 12 tokens (max tokens) thinking and gave no answer" in (answer.error or "")
    assert "switch Thinking off" in (answer.error or "")
    assert answer.reasoning.startswith("The user wants")


def test_structured_answers_parse_the_content_after_the_reasoning() -> None:
    schema = to_schema(
        {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    )
    for style in ("vllm", "tags"):
        with ThinkingServer(style, answer='{"count": 4}') as server:
            answer = _ask(server, schema=schema, max_tokens=60)
        assert answer.ok and answer.data == {"count": 4} and answer.data_error is None, answer
        assert answer.reasoning == REASONING
        assert answer.timing is not None and answer.timing.first_reasoning_s is not None


def test_reasoning_and_its_timing_survive_a_saved_session(tmp_path: Path) -> None:
    with ThinkingServer("vllm") as server:
        answer = _ask(server, max_tokens=60)
    History([answer]).save(tmp_path / "session")
    (loaded,) = load_session(tmp_path / "session")
    assert loaded.reasoning == REASONING and loaded.text == ANSWER
    assert loaded.timing is not None and loaded.timing.first_reasoning_s == answer.timing.first_reasoning_s
