"""``RealtimeVLM``: the public object a notebook creates and displays. It composes, thinly."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from ._client import ChatParams, VLMClient, redact_url
from ._controller import Controller
from ._panel import Panel
from ._protocol import Frame
from ._records import Answer
from ._tasks import bound_to_loop
from ._widget import CameraView

__all__ = ["RealtimeVLM"]


class RealtimeVLM:
    """A live camera panel in a notebook cell that asks a vision-language model about each frame.

    Display it (make it the last expression of a cell) to show the camera preview, Start/Stop,
    Send once, the prompt and the latest answer. The server is any OpenAI-compatible one
    (llama.cpp ``llama-server``, vLLM, Ollama's ``/v1``, SGLang, TGI, hosted gateways).

    Args:
        base_url: server root, with or without ``/v1`` (``http://localhost:8080``,
            ``http://localhost:11434/v1``).
        model: model id; ``None`` takes the first one the server lists.
        prompt: the question asked about every frame.
        api_key: sent as ``Authorization: Bearer …``; defaults to ``$OPENAI_API_KEY``. It stays in
            the kernel: never synced to the browser, saved in the notebook or printed.
        max_tokens: answer length limit.
        temperature: sampling temperature.
        interval: minimum seconds between the starts of live requests.
        max_in_flight: live requests allowed at once (1; more for servers with parallel slots).
        stream: show answers token by token as the server streams them.
        frames_per_request: more than 1 sends the last N frames, ``frame_spacing`` seconds
            apart, as N images in one message (for questions about motion).
        frame_spacing: seconds between the frames of a multi-frame request.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        model: str | None = None,
        prompt: str = "What do you see?",
        *,
        api_key: str | None = None,
        max_tokens: int = 100,
        temperature: float = 0.2,
        interval: float = 0.5,
        max_in_flight: int = 1,
        stream: bool = True,
        frames_per_request: int = 1,
        frame_spacing: float = 0.5,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self.view = CameraView()
        self._controller = Controller(
            self.view,
            VLMClient(base_url, api_key=key),
            ChatParams(
                prompt=prompt,
                model=model,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=stream,
            ),
            interval_s=interval,
            max_in_flight=max_in_flight,
            frames_per_request=frames_per_request,
            frame_spacing_s=frame_spacing,
        )
        self.view.on_shown(bound_to_loop(self._controller.record_display))
        self._panel = Panel(
            self.view,
            self._controller,
            make_client=lambda url, secret: VLMClient(url, api_key=secret),
            api_key=key,
        )

    def __repr__(self) -> str:
        params = self._controller.params
        return (
            f"RealtimeVLM(base_url={redact_url(self._controller.client.base_url)!r}, "
            f"model={params.model!r}, prompt={params.prompt!r})"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._panel.root._repr_mimebundle_(**kwargs)

    @property
    def base_url(self) -> str:
        """The server root requests go to (without ``/v1``)."""
        return self._controller.client.base_url

    @property
    def prompt(self) -> str:
        return self._controller.params.prompt

    @prompt.setter
    def prompt(self, value: str) -> None:
        # The panel's prompt box writes through to the controller.
        self._panel.prompt.value = value

    @property
    def history(self) -> list[Answer]:
        """This session's answers and failures, oldest first (bounded)."""
        return list(self._controller.history)

    @property
    def last_answer(self) -> Answer | None:
        return self._controller.history[-1] if self._controller.history else None

    def send_once(self) -> asyncio.Task[Answer]:
        """Ask about one fresh frame in the background (like the Send once button)."""
        return self._controller.send_once()

    async def capture(self) -> Frame:
        """A fresh JPEG frame from the browser camera."""
        return await self.view.capture()

    def start(self) -> None:
        """Start live mode (like the Start button)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop live mode and cancel the request in flight."""
        self._controller.stop()

    def close(self) -> None:
        """Stop, close the HTTP client and remove the widgets from the page."""
        self._controller.stop()
        # Without a running loop nothing is in flight and the client holds no connections.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._controller.aclose())
        _close_tree(self._panel.root)


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
