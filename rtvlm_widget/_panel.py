"""The ipywidgets around the camera view: controls, status and the latest answer.

Model output is shown in a read-only ``Textarea``: it is text, never HTML.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import ipywidgets as widgets

from ._controller import Controller
from ._records import Answer
from ._widget import CameraView

__all__ = ["Panel"]


def _describe_camera(view: CameraView) -> str:
    state = view.camera_state
    if state == "live" and view.video_width:
        return f"camera: live {view.video_width}×{view.video_height}"
    detail = f" — {view.camera_message}" if view.camera_message else ""
    return f"camera: {state}{detail}"


class Panel:
    """Builds the widget tree and keeps it in step with the controller."""

    def __init__(self, view: CameraView, controller: Controller) -> None:
        self._controller = controller
        self.answer = widgets.Textarea(
            value="",
            placeholder="The latest answer appears here.",
            disabled=True,
            layout=widgets.Layout(width="100%", height="6em"),
        )
        self.answer.add_class("rtvlm-answer")
        self.run = widgets.ToggleButton(value=False, description="Start", icon="play")
        self.run.add_class("rtvlm-run")
        self.send_once = widgets.Button(description="Send once", icon="paper-plane")
        self.send_once.add_class("rtvlm-send-once")
        self.status = widgets.Label(value="ready")
        self.status.add_class("rtvlm-status")
        self.camera = widgets.Label(value=_describe_camera(view))
        self.camera.add_class("rtvlm-camera")
        self.prompt = widgets.Textarea(
            value=controller.params.prompt,
            description="Prompt",
            continuous_update=False,
            layout=widgets.Layout(width="100%"),
        )
        self.prompt.add_class("rtvlm-prompt")
        self.root = widgets.VBox(
            [
                view,
                self.answer,
                widgets.HBox([self.run, self.send_once, self.status]),
                self.prompt,
                self.camera,
            ],
            layout=widgets.Layout(max_width="720px"),
        )
        self.root.add_class("rtvlm-panel")

        self.run.observe(self._on_run_toggled, names="value")
        self.send_once.on_click(lambda _button: controller.send_once())
        self.prompt.observe(self._on_prompt, names="value")
        view.observe(
            lambda _change: setattr(self.camera, "value", _describe_camera(view)),
            names=["camera_state", "camera_message", "video_width", "video_height"],
        )
        controller.on_answer(self._show_answer)
        controller.on_status(self._show_status)

    def _on_run_toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._controller.start()
        else:
            self._controller.stop()
        self.run.description = "Stop" if change["new"] else "Start"
        self.run.icon = "stop" if change["new"] else "play"

    def _on_prompt(self, change: dict[str, Any]) -> None:
        self._controller.params = replace(self._controller.params, prompt=str(change["new"]))

    def _show_answer(self, answer: Answer) -> None:
        if answer.ok:
            self.answer.value = answer.text
            tokens = f", {answer.usage.completion_tokens} tokens" if answer.usage else ""
            self.status.value = f"answer #{answer.seq} in {answer.latency_s * 1000:.0f} ms{tokens}"
        else:
            self.status.value = f"error: {answer.error}"

    def _show_status(self, state: str, message: str) -> None:
        if state == "busy":
            self.status.value = "asking…"
        elif state == "idle" and message == "stopped":
            self.status.value = "stopped"
        # Keep the toggle in step when the loop is stopped from Python.
        live = state == "live"
        if self.run.value != live and state in ("live", "idle"):
            self.run.value = live
