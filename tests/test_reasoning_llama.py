"""Thinking models against the real llama-server: its reasoning parser, and raw ``<think>`` tags.

The generated model thinks because a server-wide grammar makes every answer ``<think>…</think>``
then words, and its chat template is one llama.cpp recognises as a thinking template
(tests/servers/thinking.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtvlm_widget import Answer, ChatParams, VLMClient
from rtvlm_widget._controller import Controller
from tests.aio import run_async
from tests.servers.llama import LlamaServer
from tests.servers.thinking import thinking_llama_server
from tests.test_controller import StillCamera


@pytest.fixture(scope="module", params=["parsed", "raw tags"])
def thinker(
    request: pytest.FixtureRequest,
    llama_server_binary: Path,
    tiny_model: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[LlamaServer]:
    """llama-server with a model that thinks: its parser puts the thoughts in ``reasoning_content``
    (``parsed``), or leaves the tags in ``content`` (``--reasoning-format none``)."""
    parse = request.param == "parsed"
    model, mmproj = tiny_model
    name = "parsed" if parse else "raw"
    server = thinking_llama_server(
        llama_server_binary,
        model,
        mmproj,
        tmp_path_factory.mktemp(f"thinker-{name}"),
        parse=parse,
        log_path=artifacts_dir / f"llama-server-thinking-{name}.log",
    )
    with server:
        yield server


def _ask(server: LlamaServer, **params: object) -> tuple[Answer, list[str], list[str]]:
    partials: list[str] = []
    thoughts: list[str] = []

    async def go() -> Answer:
        settings = {"prompt": "Describe.", "max_tokens": 60, "temperature": 0.0, **params}
        controller = Controller(StillCamera(), VLMClient(server.base_url), ChatParams(**settings))  # type: ignore[arg-type]
        controller.on_partial(lambda _seq, text: partials.append(text))
        controller.on_reasoning(lambda _seq, text: thoughts.append(text))
        try:
            return await controller.ask()
        finally:
            await controller.aclose()

    return run_async(go()), partials, thoughts


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_the_answer_holds_no_thoughts_and_the_thoughts_are_kept(thinker: LlamaServer, stream: bool) -> None:
    answer, partials, _ = _ask(thinker, stream=stream)
    assert answer.ok, answer.error
    assert answer.text.strip() and set(answer.text) <= set("abcdefghijklmnopqrstuvwxyz "), answer.text
    assert "think" not in answer.text or "<" not in answer.text
    assert len(answer.reasoning) >= 8 and set(answer.reasoning) <= set("abcdefghijklmnopqrstuvwxyz "), answer
    # What the overlay was sent while it streamed: parts of the answer, never the thinking.
    assert partials and all(answer.text.startswith(p) and "<" not in p for p in partials), partials
    if stream:
        timing = answer.timing
        assert (
            timing is not None and timing.first_reasoning_s is not None and timing.first_token_s is not None
        )
        assert timing.first_reasoning_s <= timing.first_token_s


def test_thinking_off_reaches_the_chat_template(thinker: LlamaServer) -> None:
    """``enable_thinking: false`` closes an empty thought in the prompt: the prompt grows by it."""

    async def prompt_tokens(thinking: bool | None) -> int:
        client = VLMClient(thinker.base_url)
        try:
            completion = await client.chat(ChatParams(prompt="Describe.", max_tokens=40, thinking=thinking))
        finally:
            await client.aclose()
        assert completion.usage is not None
        return completion.usage.prompt_tokens

    default, off, on = (run_async(prompt_tokens(t)) for t in (None, False, True))
    assert off > default == on


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("max_tokens", [5, 14])
def test_max_tokens_spent_thinking_is_an_error_that_says_what_to_do(
    thinker: LlamaServer, stream: bool, max_tokens: int
) -> None:
    """Cut inside ``<think>`` itself (5 tokens: llama.cpp then sends nothing at all, or half a
    tag) or inside the thoughts (14): never an empty answer, always what to do."""
    answer, partials, _ = _ask(thinker, max_tokens=max_tokens, stream=stream)
    assert not answer.ok and answer.text == "" and answer.finish_reason == "length"
    assert f"used all {max_tokens} tokens (max tokens)" in (answer.error or "")
    assert "raise Max tokens, or switch Thinking off" in (answer.error or "")
    if max_tokens == 14:
        assert "thinking and gave no answer" in (answer.error or "") and answer.reasoning
    assert partials == [], "nothing of the thinking may reach the overlay"
