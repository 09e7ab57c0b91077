"""Faults on the server side, each against a real server process: llama-server (started, killed and
restarted here, or the session's), or ``FaultyServer``, a small real HTTP server misbehaving on cue.

Every case goes through a whole ``RealtimeVLM`` (its controller, client and panel widgets) fed by a
kernel-side source, so no browser is needed: the message must be in Python (``Answer.error``, the
exception) and in the panel (status line, log row, badges), and the session must go on — the loop
still running or cleanly stopped, every answer and failure kept in the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rtvlm_widget import (
    Answer,
    AuthenticationError,
    BadResponse,
    ImagesNotSupported,
    RealtimeVLM,
    ServerHTTPError,
    ServerUnreachable,
    VLMError,
)
from rtvlm_widget._errors import AnswerCutOff, AnswerTooLong
from tests.aio import run_async
from tests.servers.faulty import (
    Behaviour,
    CutStream,
    Endless,
    FaultyServer,
    Hang,
    Huge,
    Raw,
    Reply,
    Status,
    UnacceptingServer,
)
from tests.servers.llama import LlamaServer, free_port

FRAME = np.full((120, 160, 3), (40, 120, 200), np.uint8)
KEY = "sk-fault-test-0123456789abcdef"


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def opened(base_url: str, **kwargs: Any) -> AsyncIterator[RealtimeVLM]:
    """A RealtimeVLM on this loop with a still picture as its source (no probing, small answers)."""
    settings: dict[str, Any] = {"send_size": "original", "max_tokens": 8, "temperature": 0.0}
    app = RealtimeVLM(base_url=base_url, source=[FRAME], **(settings | kwargs))
    try:
        yield app
    finally:
        app.close()
        await app._controller.aclose()


def panel_shows(app: RealtimeVLM) -> tuple[str, str]:
    """The panel's status line and the status cell of its newest log row."""
    panel = app._panel
    panel._flush_readouts()  # live mode batches log updates; the test reads them now
    rows = panel.log.rows
    return panel.status.value, rows[-1]["status"] if rows else ""


def starts(answers: list[Answer]) -> list[float]:
    """When each request began (its frame was asked for), in epoch seconds."""
    return [a.created_at - a.total_s for a in answers]


# -- llama-server: not running at start, killed mid-session, restarted ---------------------------


class OwnLlama:
    """llama-server on a fixed port, started and killed by the test; one log for all its lives."""

    def __init__(self, binary: Path, model: tuple[Path, Path], log_path: Path, *args: str) -> None:
        self._server = LlamaServer(binary, model[0], model[1], extra_args=args)
        self.port = free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._server.command(self.port), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self._proc.returncode}); see {self.log_path}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server not healthy after 30 s; see {self.log_path}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as in a crash."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@pytest.fixture(scope="module")
def keyed_llama(
    llama_server_binary: Path, tiny_model: tuple[Path, Path], artifacts_dir: Path
) -> Iterator[OwnLlama]:
    """A llama-server that wants ``KEY`` (``--api-key``); not started: each test starts it."""
    log = artifacts_dir / "llama-server-faults.log"
    log.unlink(missing_ok=True)
    server = OwnLlama(llama_server_binary, tiny_model, log, "--api-key", KEY)
    try:
        yield server
    finally:
        server.kill()


def test_server_down_at_start_killed_mid_session_and_restarted_recovers_by_itself(
    keyed_llama: OwnLlama,
) -> None:
    server = keyed_llama
    chat_url = f"{server.base_url}/v1/chat/completions"

    async def go() -> None:
        async with opened(server.base_url, api_key=KEY, model="tiny-vlm", interval=0.1) as app:
            history = app._controller.history
            app.start()
            # Nothing listens: failures, spaced ever further apart (0.5, 1, 2 s ...), not 10 a second.
            await until(lambda: len(history) >= 4, "four failed attempts")
            down = list(history)
            assert all(isinstance(a.exception, ServerUnreachable) for a in down), down
            assert all(f"cannot reach {chat_url}" in (a.error or "") for a in down), down[0].error
            gaps = np.diff(starts(down))
            assert gaps[0] >= 0.4 and all(b > 1.6 * a for a, b in itertools.pairwise(gaps)), gaps
            status, row = panel_shows(app)
            assert status == f"error: {down[-1].error}" and row == status
            assert app._panel.api_badge.widget.value == "API: unreachable"
            assert app._controller.live
            # While down, the panel says when the next try is.
            retrying = re.compile(rf"^error: cannot reach {re.escape(chat_url)} .* · retrying in \d+ s$")
            await until(lambda: bool(retrying.match(app._panel.status.value)), "the next try announced")

            # Started now: a look at /v1/models every second finds it; the loop does not wait out
            # its backoff (by now grown to seconds).
            server.start()
            up_at = time.time()
            await until(lambda: history[-1].ok, "an answer once the server is up", timeout=15)
            assert history[-1].created_at - up_at < 2.5
            await until(lambda: app._panel.api_badge.widget.value == "API: 1 model(s)", "API badge back")
            await until(lambda: sum(a.ok for a in history) >= 5, "answers at the interval again")
            assert app._panel.status.value.startswith("answer #")

            # Killed mid-session (SIGKILL, answers streaming): the loop reports it and keeps going.
            server.kill()
            killed_at = time.time()
            await until(lambda: not history[-1].ok, "a failure after the kill")
            await asyncio.sleep(2.5)
            after_kill = [a for a in history if a.created_at > killed_at]
            assert after_kill and all(not a.ok for a in after_kill), after_kill
            broke = re.compile(
                rf"^({re.escape(chat_url)} broke off the answer stream.*see its log"
                rf"|cannot reach {re.escape(chat_url)} .*is the server running and is base_url right\?)$"
            )
            assert all(broke.match(a.error or "") for a in after_kill), [a.error for a in after_kill]
            assert len(after_kill) <= 4  # 2.5 s of backoff: 0.5 + 1 + ... not 25 attempts

            # Restarted on the same port: back by itself, no click needed.
            server.start()
            again_at = time.time()
            await until(lambda: history[-1].ok and history[-1].created_at > again_at, "answers again", 15)
            assert app._controller.live
            # Nothing was lost on the way: every attempt is in the history, in order.
            kept = list(history)
            assert kept[: len(down)] == down
            assert [a.created_at for a in kept] == sorted(a.created_at for a in kept)
            app.stop()
            assert not app._controller.live and app._panel.status.value == "stopped"

    try:
        run_async(go())
    finally:
        server.kill()
    # The key never reached the server's log, in any of its three lives.
    assert KEY not in server.log_path.read_text(errors="replace")


def test_wrong_or_missing_key_is_explained_then_fixed_from_the_panel(
    keyed_llama: OwnLlama, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = keyed_llama
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    wrong = "sk-wrong-" + "9" * 20
    caplog.set_level(logging.DEBUG)

    async def go() -> tuple[list[str], str]:
        messages: list[str] = []
        for key, fix in ((wrong, "the key sent was not accepted"), (None, "no API key was sent")):
            async with opened(server.base_url, api_key=key) as app:
                with pytest.raises(AuthenticationError) as info:
                    await app.ask_async()
                message = str(info.value)
                assert message.startswith(
                    f"{server.base_url}/v1/chat/completions refused the request "
                    "(401 Unauthorized: Invalid API Key); "
                ), message
                assert fix in message and "api_key=" in message, message
                assert info.value.status == 401
                assert panel_shows(app) == (f"error: {message}", f"error: {message}")
                messages.append(message)
                # Live mode stops at the refusal (asking again cannot help) and says why; a key
                # typed in the panel takes effect at the next Start.
                app.start()
                await until(lambda: not app._controller.live, "live mode to stop by itself")
                assert len(app._controller.history) == 2
                assert app._panel.status.value == f"live mode stopped: {message}"
                assert app._panel.run_badge.widget.value == "stopped"
                app._panel.key.value = KEY
                fixed_at = time.time()
                app.start()
                await until(lambda: app._controller.history[-1].ok, "an answer with the right key", 10)
                assert app._controller.history[-1].created_at - fixed_at < 2.0
                assert app._controller.live and app._panel.key.value == ""
                texts = [repr(app), repr(app._controller.client), repr(list(app.history))]
                texts.append(json.dumps(app.history.to_records(), default=str))
                messages += texts
        return messages, caplog.text

    server.start()
    try:
        messages, logged = run_async(go())
    finally:
        server.kill()
    for text in [*messages, logged]:
        assert wrong not in text and KEY not in text


# -- scripted misbehaviour: one request each, then the session goes on -----------------------------

NOT_FOUND_MODEL = {
    "object": "error",
    "message": "The model `x` does not exist.",
    "type": "NotFoundError",
    "param": None,
    "code": 404,
}
CUT = "The answer was cut"  # what CutStream sends before it hangs up (18 characters)

# (behaviour, stream, exception type, the whole message after the URL: {url} is the chat URL)
CASES: dict[str, tuple[Behaviour, bool, type[VLMError], str]] = {
    "unknown model (vLLM)": (
        Status(404, NOT_FOUND_MODEL),
        True,
        ServerHTTPError,
        "{url} does not know the model asked for (404 Not Found: The model `x` does not exist.); "
        "choose one the server lists",
    ),
    "500": (
        Status(500, {"error": {"message": "CUDA error: out of memory"}}),
        True,
        ServerHTTPError,
        "{url} answered 500 Internal Server Error: CUDA error: out of memory; the server failed on "
        "this request: its log says why",
    ),
    "503 loading": (
        Status(503, {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}),
        False,
        ServerHTTPError,
        "{url} answered 503 Service Unavailable: Loading model; the server (or a proxy in front of "
        "it) is busy, starting or down; live mode retries",
    ),
    "not JSON": (
        Raw(b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        False,
        BadResponse,
        "{url} answered 200 with a body that is not JSON (text/html, starting '<html><body>Welcome "
        "to nginx!</body></html>'); is base_url an OpenAI-compatible server",
    ),
    "JSON without choices": (
        Raw(b'{"id": "x", "object": "chat.completion", "result": "hi"}'),
        False,
        BadResponse,
        "{url} answered 200 without an OpenAI-style 'choices' list (got ['id', 'object', 'result']); "
        "is base_url an OpenAI-compatible server",
    ),
    "stream cut": (
        CutStream(("The answer ", "was cut")),
        True,
        ServerUnreachable,
        "{url} broke off the answer stream after 18 characters (",
    ),
    "stream ended early, cleanly": (
        CutStream(("The answer ", "was cut"), clean=True),
        True,
        AnswerCutOff,
        "{url} ended the answer stream after 18 characters without [DONE] or a finish reason",
    ),
    "error body not UTF-8": (
        Raw(b"\xff\xfe upstream \xc3 failed", "text/plain", code=502),
        True,
        ServerHTTPError,
        "{url} answered 502 Bad Gateway: \ufffd\ufffd upstream \ufffd failed; the server (or a proxy",
    ),
    "ignores max_tokens, streamed": (
        Endless("more "),
        True,
        AnswerTooLong,
        "{url} sent 165 characters for an answer of at most 8 tokens, so the client stopped reading "
        "(the text so far is kept); the server ignores max_tokens",
    ),
    "ignores max_tokens, one piece": (
        Huge(4_000_000),
        False,
        AnswerTooLong,
        "{url} sent more than 258 KB for an answer of at most 8 tokens, so the client stopped reading; "
        "the server ignores max_tokens",
    ),
    "ignores max_tokens, a long JSON answer": (
        Huge(5_000),
        False,
        AnswerTooLong,
        "{url} sent 5000 characters for an answer of at most 8 tokens",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_fault_ends_in_a_clear_message_and_the_session_goes_on(case: str) -> None:
    behaviour, stream, kind, expected = CASES[case]

    async def go(server: FaultyServer) -> tuple[VLMError, Answer, Answer, tuple[str, str]]:
        async with opened(server.base_url, model="faulty", stream=stream) as app:
            with pytest.raises(kind) as info:
                await app.ask_async()
            shown = panel_shows(app)
            failed = app._controller.history[-1]
            after = await app.ask_async()  # the next request, on the same client, just works
            return info.value, failed, after, shown

    with FaultyServer(behaviour) as server:
        error, failed, after, (status, row) = run_async(go(server))
        url = f"{server.base_url}/v1/chat/completions"
        # A cut-off answer is hung up on: the server is not left streaming into the void.
        deadline = time.monotonic() + 5
        while server.open_now and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_now == 0
    message = str(error)
    assert message.startswith(expected.format(url=url)), message
    assert failed.error == message and failed.exception is error
    # A cut-off answer keeps its fragment, marked by the error: never recorded as whole.
    assert failed.text == (CUT if isinstance(error, AnswerCutOff) else ""), failed.text
    assert status == row == f"error: {message}"
    assert after.ok and after.text == "a fine answer"
    if isinstance(error, AnswerTooLong) and stream:
        assert error.partial_text == "more " * 33  # stopped at the first piece over the bound


def test_a_retry_after_is_honoured_by_every_live_worker() -> None:
    script = (Status(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "2"}),)

    async def go(server: FaultyServer) -> list[Answer]:
        async with opened(server.base_url, model="faulty", interval=0.1, max_in_flight=2) as app:
            app.start()
            await until(lambda: sum(a.ok for a in app._controller.history) >= 4, "answers after the wait")
            status, row = panel_shows(app)
            assert status.startswith("answer #") and row == "ok"
            app.stop()
            return list(app._controller.history)

    with FaultyServer(*script, default=Reply(delay_s=0.05)) as server:
        answers = run_async(go(server))
        arrivals = [r.at for r in server.chat_requests]
    refused = answers[0]
    url = f"{server.base_url}/v1/chat/completions"
    assert refused.error == (
        f"{url} answered 429 Too Many Requests: Rate limit reached; the server asks to wait 2 s "
        "(Retry-After): live mode sends nothing to it before then"
    )
    assert isinstance(refused.exception, ServerHTTPError) and refused.exception.retry_after == 2.0
    # The second worker may have sent before the 429 came back; after it, nothing for 2 s.
    # The second worker was waiting for its turn when the 429 came: it waited the 2 s as well.
    assert arrivals[1] - arrivals[0] >= 2.0, np.subtract(arrivals, arrivals[0])
    assert all(a.ok for a in answers[1:]), [a.error for a in answers]


def test_timeouts_name_the_wait_and_the_loop_goes_on() -> None:
    async def go(hung: FaultyServer, deaf: UnacceptingServer) -> tuple[list[str], list[Answer]]:
        messages: list[str] = []
        async with opened(deaf.base_url, model="m", timeout=1.0) as app:
            with pytest.raises(ServerUnreachable) as info:
                await app.ask_async()
            messages.append(str(info.value))
        async with opened(hung.base_url, model="faulty", timeout=1.0, interval=0.1) as app:
            app.start()  # the first request hangs, the loop waits out the timeout, then goes on
            await until(lambda: any(a.ok for a in app._controller.history), "an answer after the hang")
            messages.append(panel_shows(app)[0])
            app.stop()
            return messages, list(app._controller.history)

    with FaultyServer(Hang()) as hung, UnacceptingServer() as deaf:
        (connect, read), answers = run_async(go(hung, deaf))
        hung_url = f"{hung.base_url}/v1/chat/completions"
        hung_up = hung.hung_up
    assert connect == (
        f"cannot reach {deaf.base_url}/v1/chat/completions: no answer to the connection attempt within "
        "1 s (ConnectTimeout); is the server running, and are base_url's host and port right? "
        "(a firewall may be dropping the connection)"
    )
    assert answers[0].error == (
        f"{hung_url} sent nothing for 1 s while waiting for the answer (ReadTimeout); the server may "
        "be overloaded or hung: check it (its log, its load), or allow slow models more time with timeout="
    )
    assert 0.9 < answers[0].total_s < 3
    assert all(a.ok for a in answers[1:]) and read.startswith("answer #")
    assert hung_up == 1  # the client closed the hung connection


def test_bad_utf8_in_an_answer_is_shown_with_replacement_characters() -> None:
    sse = b'data: {"choices":[{"delta":{"content":"caf\xe9 \xff ok"}}]}\n\ndata: [DONE]\n\n'
    script = (
        Raw(b'{"choices":[{"message":{"content":"caf\xe9 \xff ok"},"finish_reason":"stop"}]}'),
        Raw(sse, "text/event-stream"),
    )

    async def go(server: FaultyServer) -> list[Answer]:
        async with opened(server.base_url, model="faulty") as app:
            sent: list[dict[str, Any]] = []
            app.view.send = lambda content, buffers=None: sent.append(content)
            answers = [await app.ask_async(stream=False), await app.ask_async(stream=True)]
            shown = [m["text"] for m in sent if m.get("kind") == "answer" and m.get("final")]
            assert shown == [a.text for a in answers]  # what the view's answer box and overlay get
            return answers

    with FaultyServer(*script) as server:
        answers = run_async(go(server))
    assert [a.text for a in answers] == ["caf\ufffd \ufffd ok"] * 2


def test_wrong_base_url_path_and_a_server_without_images(
    llama_server: LlamaServer, text_only_llama_server: LlamaServer
) -> None:
    async def go() -> list[tuple[VLMError, str]]:
        seen = []
        for url in (llama_server.base_url + "/api", text_only_llama_server.base_url):
            async with opened(url) as app:
                with pytest.raises(VLMError) as info:
                    await app.ask_async()
                seen.append((info.value, panel_shows(app)[0]))
                assert len(app.history) == 1
                # Both are permanent: live mode stops at the first failure and says why.
                app.start()
                await until(lambda: not app._controller.live, "live mode to stop by itself")
                assert len(app.history) == 2 and app.history[-1].error == str(info.value)
                assert app._panel.status.value == f"live mode stopped: {info.value}"
        return seen

    (wrong_path, shown_path), (no_images, shown_images) = run_async(go())
    assert str(wrong_path) == (
        f"{llama_server.base_url}/api/v1/chat/completions was not found (404 Not Found: File Not Found); "
        "check base_url (the server root such as http://localhost:8080, or one ending in /v1) and the "
        "model name"
    )
    assert isinstance(no_images, ImagesNotSupported)
    assert str(no_images).startswith(
        f"this server cannot take images ({text_only_llama_server.base_url}/v1/chat/completions answered "
    )
    assert str(no_images).endswith("start it with --mmproj or choose a vision model")
    assert shown_path == f"error: {wrong_path}" and shown_images == f"error: {no_images}"


# -- bad settings are refused, nothing is sent -------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"base_url": ""}, "base_url is empty: give the server root, e.g. http://localhost:8080"),
        ({"base_url": "ftp://example.com"}, "base_url 'ftp://example.com' is not an http(s) URL"),
        ({"interval": -0.5}, "interval must be a number of seconds >= 0, not -0.5"),
        ({"max_tokens": 0}, "max_tokens must be a whole number from 1 to 131072, not 0"),
        ({"max_tokens": 10**9}, "max_tokens must be a whole number from 1 to 131072, not 1000000000"),
        ({"temperature": -0.1}, "temperature must be a number from 0 to 2, not -0.1"),
        ({"temperature": float("nan")}, "temperature must be a number from 0 to 2, not nan"),
        ({"max_in_flight": 0}, "max_in_flight must be a whole number >= 1, not 0"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(settings: dict[str, Any], message: str) -> None:
    with FaultyServer() as server:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            RealtimeVLM(**({"base_url": server.base_url, "source": [FRAME]} | settings))
        assert server.requests == []


def test_bad_settings_later_are_refused_and_not_sent() -> None:
    async def go(server: FaultyServer) -> None:
        async with opened(server.base_url, model="faulty") as app:
            await until(lambda: len(server.requests) >= 1, "the panel's model list request")
            with pytest.raises(ValueError, match="max_tokens must be a whole number from 1"):
                await app.ask_async(max_tokens=-1)
            with pytest.raises(ValueError, match="temperature must be a number from 0 to 2"):
                await app.ask_async(temperature=3)
            # An empty Base URL in the panel: said in the status line, and Send once sends nothing.
            app._panel.base_url.value = ""
            assert app._panel.status.value.startswith("error: base_url is empty")
            app.view._on_reply(app.view, {"kind": "ask", "seq": 1}, [])  # a click on Send once
            assert app._panel.status.value.startswith("not sent: base_url is empty")
            await asyncio.sleep(0.2)
            assert server.chat_requests == [] and len(app.history) == 0

    with FaultyServer() as server:
        run_async(go(server))


def test_a_hung_request_says_how_long_it_has_waited_and_stop_cancels_it() -> None:
    async def go(hung: FaultyServer) -> tuple[str, str, str]:
        async with opened(hung.base_url, model="faulty", timeout=60.0) as app:
            app._controller.send_once()
            waiting = re.compile(r"^waiting (\d+) s for the answer…$")
            await until(lambda: bool(waiting.match(app._panel.status.value)), "waiting N s (send once)", 10)
            once = app._panel.status.value
            app._controller._once.cancel()  # type: ignore[union-attr]
            app.start()
            live = re.compile(r"^waiting (\d+) s for the answer… \(Stop cancels it\)$")
            await until(lambda: bool(live.match(app._panel.status.value)), "waiting N s (live)", 10)
            shown = app._panel.status.value
            app.stop()
            await until(lambda: hung.hung_up >= 2, "the held requests hung up on")
            return once, shown, app._panel.status.value

    with FaultyServer(default=Hang()) as hung:
        once, live, after = run_async(go(hung))
    assert int(once.split()[1]) >= 2 and int(live.split()[1]) >= 2, (once, live)
    assert after == "stopped"
