"""The ipywidgets around the camera view: controls, badges, readouts, the answer and the log.

Layout, top to bottom: the camera view (video with the answer overlaid, the Start/Stop and Send
once buttons, the latest answer: all drawn by the view itself, so a click takes its frame at once and
an answer reaches the screen in one message), badges and readouts, the prompt and generation
sliders, camera settings, API settings, request log. Model output is shown as text, never HTML.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ipywidgets as widgets

from ._apicheck import check_api
from ._client import VLMClient
from ._controller import Controller
from ._costs import AUTO
from ._errors import ServerUnreachable, VLMError
from ._logview import LogView
from ._metrics import RollingStats
from ._plot import LatencyPlot
from ._records import Answer
from ._schema import to_schema
from ._sendsize_ui import SendSizeControls
from ._shapes import DETECT_PROMPT, DETECT_SCHEMA
from ._tasks import bound_to_loop, running_loop, spawn
from ._ui import Badge, KeyBox, classed
from ._widget import RESOLUTIONS, CameraUnavailable, CameraView

__all__ = ["Panel"]

CUSTOM = "Custom…"
#: Live mode refreshes the log, the plot and the readouts at most this often.
READOUTS_EVERY_S = 0.25
_CAMERA_TONES = {"live": "ok", "starting": "busy", "off": "idle"}


#: The detection preset's answers are JSON lists of boxes: room for a few objects.
DETECT_MAX_TOKENS = 300


class Panel:
    """Builds the widget tree and keeps it in step with the controller and the camera view."""

    def __init__(
        self,
        view: CameraView,
        controller: Controller,
        *,
        make_client: Callable[[str, str | None], VLMClient],
        api_key: str | None,
    ) -> None:
        self._view = view
        self._controller = controller
        self._make_client = make_client
        # The key lives here and in the client's headers only; the password box is emptied at once.
        self._api_key = api_key
        # Why the Base URL field cannot be used (None: it can); nothing is sent meanwhile.
        self._url_problem: str | None = None
        self._stats = RollingStats()
        # Answers not yet in the log/plot/readouts, and the pending flush (live mode batches them).
        self._unshown: list[Answer] = []
        #: The answer the status line describes (its image tokens may follow).
        self._status_answer: Answer | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._waiting_handle: asyncio.TimerHandle | None = None
        # Control callbacks run on the loop the panel was made on (see bound_to_loop).
        self._loop = running_loop()
        params = controller.params
        small = widgets.Layout(width="auto")
        # Room for the labels ("Temperature", "JPEG quality") instead of truncating them.
        wide = {"description_width": "90px"}

        # -- badges and readouts (the run buttons and the answer are the view's) -------------
        self.camera_badge = Badge("camera", "camera: off")
        self.api_badge = Badge("api", "API: not checked")
        self.run_badge = Badge("run", "idle")
        self.readout = classed(widgets.Label(value=self._stats.readout().describe()), "rtvlm-readout")
        self.plot = LatencyPlot()
        self.status = classed(widgets.Label(value="ready"), "rtvlm-status")

        # -- generation ---------------------------------------------------------------------
        self.prompt = classed(
            widgets.Textarea(
                value=params.prompt,
                description="Instruction",
                style=wide,
                continuous_update=False,
                layout=widgets.Layout(width="100%", height="4em"),
            ),
            "rtvlm-prompt",
        )
        self.interval = classed(
            widgets.IntSlider(
                # Python may ask for less than 100 ms (benchmarks): the slider then shows it.
                value=round(controller.interval_s * 1000),
                min=min(100, round(controller.interval_s * 1000)), max=5000, step=50,
                description="Interval ms", style=wide, continuous_update=False,
            ),
            "rtvlm-interval",
        )  # fmt: skip
        self.max_tokens = classed(
            widgets.IntSlider(
                value=params.max_tokens, min=1, max=1024, description="Max tokens", style=wide,
                continuous_update=False,
            ),
            "rtvlm-max-tokens",
        )  # fmt: skip
        self.temperature = classed(
            widgets.FloatSlider(
                value=params.temperature, min=0.0, max=2.0, step=0.05, description="Temperature", style=wide,
                continuous_update=False,
            ),
            "rtvlm-temperature",
        )  # fmt: skip
        self.thinking = classed(
            widgets.Dropdown(
                options=list(THINKING_CHOICES), value=_thinking_choice(params.thinking),
                description="Thinking", style=wide,
                tooltip="Thinking models: off answers at once (fastest); on thinks first",
            ),
            "rtvlm-thinking",
        )  # fmt: skip

        # -- camera -------------------------------------------------------------------------
        self.device = classed(
            widgets.Dropdown(options=[("Default camera", "")], value="", description="Camera", style=wide),
            "rtvlm-device",
        )
        self.resolution = classed(
            widgets.Dropdown(
                options=list(RESOLUTIONS), value=view.resolution, description="Resolution", style=wide
            ),
            "rtvlm-resolution",
        )
        self.quality = classed(
            widgets.FloatSlider(
                value=view.jpeg_quality, min=0.5, max=0.95, step=0.05, description="JPEG quality", style=wide,
                continuous_update=False,
            ),
            "rtvlm-quality",
        )  # fmt: skip
        self.mirror = classed(
            widgets.Checkbox(value=view.mirror, description="Mirror preview", indent=False, layout=small),
            "rtvlm-mirror",
        )
        self.overlay = classed(
            widgets.Checkbox(value=view.overlay, description="Answer over video", indent=False, layout=small),
            "rtvlm-overlay-toggle",
        )
        self.shapes_toggle = classed(
            widgets.Checkbox(
                value=view.shapes_visible, description="Boxes over video", indent=False, layout=small
            ),
            "rtvlm-shapes-toggle",
        )

        # -- API ----------------------------------------------------------------------------
        self.base_url = classed(
            widgets.Text(
                value=controller.client.base_url, description="Base URL", style=wide, continuous_update=False
            ),
            "rtvlm-base-url",
        )
        self.model = classed(
            widgets.Dropdown(options=[CUSTOM], value=CUSTOM, description="Model", style=wide), "rtvlm-model"
        )
        self.custom_model = classed(
            widgets.Text(value=params.model or "", placeholder="model id", continuous_update=False),
            "rtvlm-custom-model",
        )
        self.refresh = classed(
            widgets.Button(description="Refresh", icon="refresh", layout=small), "rtvlm-refresh"
        )
        self.key = classed(
            KeyBox(
                value="",
                placeholder="key set (hidden)" if api_key else "API key (or $OPENAI_API_KEY)",
                description="API key",
                style=wide,
                continuous_update=False,
            ),
            "rtvlm-api-key",
        )
        self.test_api = classed(
            widgets.Button(description="Test API", icon="check", layout=small), "rtvlm-test-api"
        )

        self.log = LogView()

        def row(*children: widgets.Widget) -> widgets.HBox:
            return widgets.HBox(
                list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="center")
            )

        def section(title: str, *children: widgets.Widget) -> widgets.VBox:
            label = widgets.HTML(value=f"<b>{title}</b>")  # a fixed heading, never model output
            return widgets.VBox([label, *children])

        readouts = row(
            self.run_badge.widget, self.camera_badge.widget, self.api_badge.widget, self.readout, self.plot
        )
        self.detect = classed(
            widgets.ToggleButton(
                value=params.schema is not None and params.prompt == DETECT_PROMPT,
                description="Detect objects",
                icon="crosshairs",
                tooltip="Preset: ask for labelled boxes as JSON (a schema the server enforces)",
                layout=small,
            ),
            "rtvlm-detect",
        )
        generation = section(
            "Generation",
            self.prompt,
            row(self.interval, self.max_tokens, self.temperature),
            row(self.thinking, self.detect),
        )
        self.send_size = SendSizeControls(controller.send_size, on_loop=self._on_loop)
        camera = section(
            "Camera",
            row(self.device, self.resolution),
            row(self.quality, self.mirror, self.overlay, self.shapes_toggle),
            self.send_size.root,
        )
        api = section(
            "API",
            row(self.base_url, self.key),
            row(self.model, self.custom_model, self.refresh, self.test_api),
        )
        self.root = classed(
            widgets.VBox(
                [view, readouts, self.status, generation, camera, api, self.log],
                layout=widgets.Layout(max_width="760px"),
            ),
            "rtvlm-panel",
        )

        if view.source != "camera":
            # Frames come from the kernel: the browser camera's picker and resolution do nothing.
            self.device.layout.display = self.resolution.layout.display = "none"
        self._wire()
        self._show_camera()
        self._show_custom()
        spawn(self.refresh_models())

    # -- wiring ---------------------------------------------------------------------------------
    def _on_loop(self, fn: Callable[..., object]) -> Callable[..., None]:
        """``fn``, called on the panel's event loop even when a message arrives on another one."""
        return bound_to_loop(fn, self._loop)

    def _wire(self) -> None:
        c, v, on = self._controller, self._view, self._on_loop
        v.on_ask(on(lambda frame: None if self._blocked() else c.send_once(frame)))
        v.on_toggle_live(on(self.toggle_live))
        c.send_size.on_change(on(lambda size: setattr(v, "send_edge", size.max_edge)))
        v.send_edge = c.send_size.max_edge
        self.prompt.observe(on(lambda ch: self._set_params(prompt=str(ch["new"]))), names="value")
        self.max_tokens.observe(on(lambda ch: self._set_params(max_tokens=int(ch["new"]))), names="value")
        self.temperature.observe(on(lambda ch: self._set_params(temperature=float(ch["new"]))), names="value")
        self.thinking.observe(
            on(lambda ch: self._set_params(thinking=THINKING_CHOICES[ch["new"]])), names="value"
        )
        self.interval.observe(on(lambda ch: setattr(c, "interval_s", ch["new"] / 1000)), names="value")
        self.detect.observe(on(self._on_detect), names="value")

        widgets.link((self.resolution, "value"), (v, "resolution"))
        widgets.link((self.quality, "value"), (v, "jpeg_quality"))
        widgets.link((self.mirror, "value"), (v, "mirror"))
        widgets.link((self.overlay, "value"), (v, "overlay"))
        widgets.link((self.shapes_toggle, "value"), (v, "shapes_visible"))
        self.device.observe(lambda ch: setattr(v, "device_id", ch["new"]), names="value")
        v.observe(self._on_devices, names="devices")
        v.observe(lambda _ch: self._show_camera(), names=["camera_state", "camera_message", "video_width"])
        v.observe(on(lambda ch: self._probe_soon() if ch["new"] == "live" else None), names="camera_state")

        self.model.observe(on(lambda _ch: self._show_custom()), names="value")
        self.custom_model.observe(on(lambda _ch: self._show_custom()), names="value")
        self.refresh.on_click(on(lambda _b: None if self._blocked() else spawn(self.refresh_models())))
        self.base_url.observe(on(self._on_base_url), names="value")
        self.key.observe(on(self._on_key), names="value")
        self.test_api.on_click(on(lambda _b: None if self._blocked() else spawn(self.run_api_check())))

        c.on_answer(self._show_answer)
        c.on_revised(self._show_revised)
        c.on_reasoning(self._show_thinking)
        c.on_status(self._show_status)
        self.log.on_clear(on(v.clear_answer))

    def _on_detect(self, change: dict[str, Any]) -> None:
        """The detection preset: its prompt and schema (room for the JSON); off drops the schema."""
        if change["new"]:
            self.prompt.value = DETECT_PROMPT
            self.max_tokens.value = max(self.max_tokens.value, DETECT_MAX_TOKENS)
            self._set_params(schema=to_schema(DETECT_SCHEMA, name="detections"))
        else:
            self._set_params(schema=None)

    def _set_params(self, **changes: Any) -> None:
        self._controller.params = replace(self._controller.params, **changes)

    def _blocked(self) -> bool:
        """True, and says so in the status line, while the Base URL field holds an unusable URL."""
        if self._url_problem is None:
            return False
        self.status.value = f"not sent: {self._url_problem}"
        return True

    def toggle_live(self) -> None:
        """Start/Stop (or Space) in the view: live mode on or off."""
        if self._controller.live:
            self._controller.stop()
        elif not self._blocked():
            self._controller.start()

    # -- camera ---------------------------------------------------------------------------------
    def _on_devices(self, change: dict[str, Any]) -> None:
        options = [("Default camera", "")] + [
            (str(d.get("label", "")), str(d.get("id", ""))) for d in change["new"]
        ]
        current = self.device.value
        self.device.options = options
        if current in {value for _, value in options}:
            self.device.value = current

    def _show_camera(self) -> None:
        v = self._view
        state = v.camera_state
        text = f"camera: {state}"
        if state == "live":
            text = f"camera: live {v.video_width}×{v.video_height}"
        if v.camera_message:
            text += f" ({v.camera_message})"
        self.camera_badge.set(text, _CAMERA_TONES.get(state, "error"))

    # -- API ------------------------------------------------------------------------------------
    def _show_custom(self) -> None:
        custom = self.model.value == CUSTOM
        self.custom_model.layout.display = None if custom else "none"
        model = (self.custom_model.value.strip() or None) if custom else self.model.value
        self._set_params(model=model)
        self._probe_soon()

    def _probe_soon(self) -> None:
        """Measure the send sizes' image cost for the chosen model now, in the background, so the
        first answer does not wait for it (auto send size, a model chosen, frames to be had)."""
        if self._url_problem is None and self._view.camera_state == "live" and self._controller.params.model:
            self._controller.probe_in_background()

    async def refresh_models(self) -> None:
        """Fill the model dropdown from ``GET /v1/models``; keeps a custom id the server does not list.

        A model picked from the dropdown that the (new) server no longer lists gives way to the
        server's first model instead of turning into a custom id the server does not know.
        """
        try:
            models = await self._controller.client.list_models()
        except VLMError as exc:
            self.api_badge.set("API: unreachable", "error")
            self.status.value = f"error: {exc}"
            return
        # Read before the options change: assigning options selects the first entry.
        wanted, custom = self._controller.params.model, self.model.value == CUSTOM
        self.model.options = [*models, CUSTOM]
        if wanted and wanted not in models and custom:
            self.custom_model.value = wanted
            self.model.value = CUSTOM
        else:
            self.model.value = wanted if wanted in models else (models[0] if models else CUSTOM)
        self._show_custom()
        if self.api_badge.tone != "ok":
            self.api_badge.set(f"API: {len(models)} model(s)", "ok")

    def new_client(self) -> VLMClient:
        """A client like the controller's (same URL and key), for requests made on another event
        loop (a blocking ``ask()`` runs on a worker thread)."""
        if self._url_problem:
            raise ValueError(f"not sending: {self._url_problem}")
        return self._make_client(self._controller.client.base_url, self._api_key)

    def report(self, message: str) -> None:
        """Show a problem that is not a request's (e.g. a user callback that raised) in the log and
        the status line."""
        self.log.add_note(message)
        self.status.value = message

    def _rebuild_client(self) -> None:
        self._controller.use_client(self._make_client(self._controller.client.base_url, self._api_key))

    def _on_base_url(self, change: dict[str, Any]) -> None:
        try:
            client = self._make_client(str(change["new"]), self._api_key)
        except ValueError as exc:
            # The old client stays, but nothing may go to it while the field shows another URL.
            self._url_problem = str(exc)
            self._controller.stop()
            self.status.value = f"error: {exc}"
            self.api_badge.set("API: bad base URL", "error")
            return
        self._url_problem = None
        self._controller.use_client(client)
        self.api_badge.set("API: not checked", "idle")
        spawn(self.refresh_models())

    def _on_key(self, change: dict[str, Any]) -> None:
        key = str(change["new"])
        if not key:
            return
        self._api_key = key
        self.key.value = ""  # so the key is not kept in the widget state (or a saved notebook)
        self.key.placeholder = "key set (hidden)"
        self._rebuild_client()
        spawn(self.refresh_models())

    async def run_api_check(self) -> None:
        self.test_api.disabled = True
        self.api_badge.set("API: checking…", "busy")
        try:
            result = await check_api(self._controller.client, self._controller.params.model)
        finally:
            self.test_api.disabled = False
        self.api_badge.set("API: ok" if result.ok else "API: problem", "ok" if result.ok else "error")
        self.status.value = result.summary()
        if result.ok and self._controller.send_size.mode == AUTO and self._view.camera_state == "live":
            # Test API also measures what a frame costs at each send size (the table shows it).
            try:
                await self._controller.probe_send_size()
            except (VLMError, CameraUnavailable) as exc:
                self.send_size.summary.value = f"send size: probe failed ({exc})"

    # -- answers and run state ------------------------------------------------------------------
    def _show_answer(self, answer: Answer) -> None:
        if answer.ok:
            self._stats.add(answer.latency_s)
        self._unshown.append(answer)
        # In live mode the log, plot and readouts follow at most every READOUTS_EVERY_S: each
        # update is a comm message, and at 20+ answers a second they cost more kernel time than
        # the request itself.
        loop = self._loop
        if not self._controller.live or loop is None or loop.is_closed():
            self._flush_readouts()
        elif self._flush_handle is None:
            self._flush_handle = loop.call_later(READOUTS_EVERY_S, self._flush_readouts)

    def _flush_readouts(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        answers, self._unshown = self._unshown, []
        if not answers:
            return
        self.log.add(*answers)
        self.plot.add(*answers)
        last = self._status_answer = answers[-1]
        self.status.value = _describe(last)
        # The API badge follows what requests find: unreachable while they cannot get through, and
        # the model list read again once one does (the server is back).
        if isinstance(last.exception, ServerUnreachable):
            self.api_badge.set("API: unreachable", "error")
        elif last.ok and self.api_badge.widget.value == "API: unreachable":
            self.api_badge.set("API: back, listing models…", "busy")
            spawn(self.refresh_models())
        self.readout.value = self._stats.readout().describe()

    def _show_thinking(self, _seq: int, reasoning: str) -> None:
        # A click's answer may think for seconds first: say so (live mode's status is its readouts).
        if not self._controller.live:
            self.status.value = f"thinking… ({len(reasoning.split())} words so far)"

    def _show_revised(self, answer: Answer) -> None:
        # The image tokens of an answer arrive after it (asked once it was shown): the status
        # line still describing that answer says them too.
        shown = self._status_answer
        if shown is not None and shown.seq == answer.seq and self.status.value == _describe(shown):
            self._status_answer = answer
            self.status.value = _describe(answer)

    def _show_status(self, state: str, message: str) -> None:
        if state not in ("live", "retrying"):
            self._flush_readouts()  # nothing waits for the next tick once live mode ends
        tone = {"live": "ok", "busy": "busy", "error": "error", "retrying": "busy", "stopped": "error"}
        self.run_badge.set(state, tone.get(state, "idle"))
        if state == "busy":
            self.status.value = "asking…"
        elif state == "idle" and message == "stopped":
            self.status.value = "stopped"
        elif state == "retrying":
            # The server is down: the last error, and when the next try is.
            last = self._status_answer
            cause = f"error: {last.error} · " if last is not None and not last.ok else ""
            self.status.value = f"{cause}{message}"
        elif state == "stopped":
            self.status.value = f"live mode stopped: {message}"
        if state in ("busy", "live"):
            self._watch_waiting()
        # The view's Start/Stop button follows the loop, however it was started or stopped.
        if state in ("live", "idle", "stopped"):
            self._view.live = state == "live"

    def _watch_waiting(self) -> None:
        """Once a second while requests may be open: a request waiting for more than
        WAITING_AFTER_S says so ("waiting N s…"), so a hung server is not mistaken for a slow one."""
        loop = self._loop
        if self._waiting_handle is not None or loop is None or loop.is_closed():
            return

        def tick() -> None:
            self._waiting_handle = None
            waited = self._controller.waiting_s
            if waited >= WAITING_AFTER_S:
                stop = " (Stop cancels it)" if self._controller.live else ""
                self.status.value = f"waiting {waited:.0f} s for the answer…{stop}"
            if self._controller.live or waited > 0:
                self._watch_waiting()

        self._waiting_handle = loop.call_later(1.0, tick)


def _describe(answer: Answer) -> str:
    """The status line for ``answer``."""
    if not answer.ok:
        return f"error: {answer.error}"
    tokens = f", {answer.usage.completion_tokens} tokens" if answer.usage else ""
    image = f", {answer.image_tokens} image tokens/frame" if answer.image_tokens is not None else ""
    return f"answer #{answer.seq} in {answer.latency_s * 1000:.0f} ms{tokens}{image}"


#: A request open this long (seconds) shows "waiting N s…" in the status line.
WAITING_AFTER_S = 2.0

#: The Thinking dropdown: its labels and the ``ChatParams.thinking`` each one means.
THINKING_CHOICES: dict[str, bool | None] = {"server default": None, "off": False, "on": True}


def _thinking_choice(thinking: bool | None) -> str:
    return next(label for label, value in THINKING_CHOICES.items() if value is thinking)
