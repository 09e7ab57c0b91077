"""The panel's camera and run controls, each proven by what the kernel and the server get.

Real JupyterLab, headless Debian Chromium with fake cameras, real llama-server (or the scripted
`GatedServer` where a request must be held). Everything is driven through the page: dropdowns,
the slider's readout, the checkbox, the buttons and the keyboard; the kernel is only read.

Chromium facts these tests rely on (checked on Chromium 156):

* ``--use-file-for-fake-video-capture`` always gives exactly one camera, labelled with the
  file's path; ``--use-fake-device-for-media-stream=device-count=N`` without a file gives N
  built-in cameras (``fake_device_0`` is green, ``fake_device_1`` dark grey, both 640×480 by
  default and able to deliver 1280×720 and 1920×1080); ``device-count=0`` gives NotFoundError.
* Without ``--use-fake-ui-for-media-stream`` the camera follows the Playwright context's
  permissions: granted, getUserMedia works; not granted, it fails at once with NotAllowedError
  (headless cannot ask); ``context.clear_permissions()`` makes Chromium end the running tracks
  (their ``ended`` event fires): a real way for the camera to stop mid-session.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, expect

from tests.browser.camera import QUADRANT_COLORS_BGR, QUADRANTS, quadrant_means, write_quadrants_y4m
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage, launch_chromium
from tests.servers.llama import LlamaServer
from tests.servers.scripted import GatedServer
from tests.servers.tiny_vlm import IMAGE_TOKENS

PROMPT = "What do you see?"
MAX_TOKENS = 4
WAIT_S = 30.0
WAIT_MS = WAIT_S * 1000
COLOR_TOLERANCE = 8.0  # per channel, flat areas after 4:2:0 capture and JPEG
NO_720P = "this camera cannot deliver 1280×720; using 640×480"
DENIED = "camera permission denied; allow the camera for this page (needs https or localhost)"
ENDED = "the camera stopped delivering video"
GATED_ANSWER = "the held answer"

# Cell 0 of every notebook: `facts(app)` prints what the kernel knows, as JSON.
SETUP = """
import base64, json
from rtvlm_widget import RealtimeVLM

def facts(app, jpeg=False):
    view = app.view
    out = {"count": len(app.history), "quality": view.jpeg_quality, "resolution": view.resolution,
           "mirror": view.mirror, "device_id": view.device_id, "devices": view.devices,
           "state": view.camera_state, "states": getattr(view, "states", []), "prompt": app.prompt,
           "errors": [a.error for a in app.history if a.error]}
    a = app.last_answer
    if a is not None:
        out["last"] = {"seq": a.seq, "text": a.text, "error": a.error, "prompt": a.prompt,
                       "width": a.frame_width, "height": a.frame_height, "size": len(a.jpeg),
                       "prompt_tokens": a.usage.prompt_tokens if a.usage else None,
                       "completion_tokens": a.usage.completion_tokens if a.usage else None}
        if jpeg:
            out["last"]["jpeg"] = base64.b64encode(a.jpeg).decode()
    print(json.dumps(out))

def recording(app):
    # Every camera state the view reports, from the first one on.
    app.view.states = [app.view.camera_state]
    app.view.observe(lambda ch: app.view.states.append(ch["new"]), names="camera_state")
    return app
"""


def _app_cell(base_url: str, var: str = "app", **kwargs: Any) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{var} = recording(RealtimeVLM(base_url={base_url!r}, {args}))\n{var}"


def _llama_cell(llama: LlamaServer) -> str:
    return SETUP + _app_cell(
        llama.base_url, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0.0, interval=0.1
    )


# -- small helpers ------------------------------------------------------------------------------


def facts(nb: NotebookPage, var: str = "app", *, jpeg: bool = False) -> dict[str, Any]:
    out = nb.run_code(f"facts({var}, jpeg={jpeg})")
    result: dict[str, Any] = json.loads(out)
    return result


def wait_facts(
    nb: NotebookPage,
    what: str,
    check: Callable[[dict[str, Any]], bool],
    var: str = "app",
    *,
    jpeg: bool = False,
    timeout: float = WAIT_S,
) -> dict[str, Any]:
    """Poll `facts` until ``check`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = facts(nb, var, jpeg=jpeg)
        if check(got):
            return got
        if time.monotonic() > deadline:
            got.get("last", {}).pop("jpeg", None)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last facts: {got}")
        time.sleep(0.1)


def wait_answers(
    nb: NotebookPage, count: int, what: str, var: str = "app", *, jpeg: bool = False
) -> dict[str, Any]:
    """Wait until ``var.history`` holds at least ``count`` records."""
    return wait_facts(nb, what, lambda f: f["count"] >= count, var, jpeg=jpeg)


def decode(last: dict[str, Any]) -> npt.NDArray[np.uint8]:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(last["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the kernel's JPEG does not decode"
    return image.astype(np.uint8)


def nearest_quadrant_color(bgr: tuple[float, float, float]) -> str:
    def distance(name: str) -> float:
        return sum((a - b) ** 2 for a, b in zip(bgr, QUADRANT_COLORS_BGR[name], strict=True))

    return min(QUADRANTS, key=distance)


def assert_quadrants(image: npt.NDArray[np.uint8]) -> None:
    """The camera's picture, unmirrored: red top left, green top right, and so on."""
    means = quadrant_means(image)
    for quadrant in QUADRANTS:
        got, expected = means[quadrant], QUADRANT_COLORS_BGR[quadrant]
        assert all(abs(g - e) <= COLOR_TOLERANCE for g, e in zip(got, expected, strict=True)), (
            quadrant,
            got,
            expected,
        )


def text_only_prompt_tokens(server: LlamaServer, prompt: str) -> int:
    """Prompt tokens of the same request without the image, straight from the server."""
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}], "max_tokens": 1}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
    response.raise_for_status()
    tokens: int = response.json()["usage"]["prompt_tokens"]
    return tokens


class Panel:
    """Locators for one `RealtimeVLM` panel in a cell's output."""

    def __init__(self, nb: NotebookPage, cell: int) -> None:
        self.nb = nb
        self.root = nb.cell_output(cell).locator(".rtvlm-panel")
        self.video = self.root.locator(".rtvlm-view video")
        self.view_badge = self.root.locator(".rtvlm-view .rtvlm-badge")
        self.note = self.root.locator(".rtvlm-view .rtvlm-note")
        self.camera_badge = self.root.locator(".rtvlm-badge-camera")
        self.run_badge = self.root.locator(".rtvlm-badge-run")
        self.status = self.root.locator(".rtvlm-status")
        self.answer = self.root.locator(".rtvlm-answer textarea")
        self.run = self.root.locator("button.rtvlm-run")
        self.send = self.root.locator("button.rtvlm-send-once")
        self.device = self.root.locator(".rtvlm-device select")
        self.resolution = self.root.locator(".rtvlm-resolution select")
        self.quality = self.root.locator(".rtvlm-quality .widget-readout")
        self.mirror = self.root.locator(".rtvlm-mirror input[type=checkbox]")
        self.prompt = self.root.locator(".rtvlm-prompt textarea")

    def wait_live(self) -> None:
        expect(self.view_badge).to_have_attribute("data-state", "live", timeout=WAIT_MS)

    def send_once(self, var: str = "app", *, jpeg: bool = False) -> dict[str, Any]:
        """Click Send once; the kernel's record of that request (answer or error)."""
        before = facts(self.nb, var)["count"]
        self.send.click()
        grown = wait_facts(
            self.nb, f"{var}.history to grow after Send once", lambda f: f["count"] > before, var, jpeg=jpeg
        )
        last: dict[str, Any] = grown["last"]
        return last


def textured_quadrants_y4m(path: Path) -> Path:
    """The 640×480 quadrants with luma noise in a 48-px band along every quadrant edge.

    Flat quadrants compress to the same few KB at any JPEG quality; the noise makes the quality
    matter. `quadrant_means` reads only the quadrants' central halves (from 60 px in), so the
    band (and the 16-px JPEG blocks it touches) stays out of the colour checks.
    """
    width, height, band = 640, 480, 48
    write_quadrants_y4m(path, width, height)
    data = bytearray(path.read_bytes())
    start = data.index(b"FRAME\n") + len(b"FRAME\n")
    luma = np.frombuffer(bytes(data[start : start + width * height]), np.uint8).reshape(height, width)
    rows = np.arange(height) % (height // 2)
    cols = np.arange(width) % (width // 2)
    near_row = (rows < band) | (rows >= height // 2 - band)
    near_col = (cols < band) | (cols >= width // 2 - band)
    mask = near_row[:, None] | near_col[None, :]
    noise = np.random.default_rng(7).integers(-40, 41, size=luma.shape)
    noisy = np.where(mask, np.clip(luma.astype(np.int16) + noise, 16, 235), luma).astype(np.uint8)
    data[start : start + width * height] = noisy.tobytes()
    path.write_bytes(bytes(data))
    return path


# -- fixtures -----------------------------------------------------------------------------------


@dataclass
class Notebooks:
    """The module's notebooks, opened together (their kernels start in parallel)."""

    #: Granted the textured-quadrant camera: ``app`` on llama-server (cell 0), ``gapp`` on the
    #: GatedServer (cell 1).
    main: NotebookPage
    main_context: BrowserContext
    #: Same camera, never granted.
    denied: NotebookPage
    #: Two built-in cameras (``fake_device_0`` green, ``fake_device_1`` dark).
    devices: NotebookPage
    #: No camera at all.
    no_camera: NotebookPage
    #: One 1280×720 quadrant camera.
    hd: NotebookPage

    def all(self) -> list[NotebookPage]:
        return [self.main, self.denied, self.devices, self.no_camera, self.hd]


def _shut(nb: NotebookPage) -> None:
    try:
        nb.shutdown_kernel()
    except Exception as exc:  # noqa: BLE001 - best effort; the server stops at session end
        print(f"kernel shutdown failed: {exc}")


def _report_failure(request: pytest.FixtureRequest, nb: NotebookPage, artifacts_dir: Path) -> None:
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed or nb.page.is_closed():
        return
    name = nb.panel_id or "page"
    shot = artifacts_dir / f"test_controls_camera-{request.node.name}-{name}.png"
    try:
        nb.screenshot(shot)
        print(f"screenshot: {shot}")
    except Exception as exc:  # noqa: BLE001 - a report helper must not hide the failure
        print(f"screenshot failed: {exc}")
    print("console/page errors:\n" + ("\n".join(nb.collect_console()) or "(none)"))


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedServer]:
    with GatedServer(GATED_ANSWER) as server:
        yield server


@pytest.fixture(scope="module")
def notebooks(
    jupyter_lab: JupyterLab,
    chromium: Browser,
    llama_server: LlamaServer,
    gated: GatedServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Notebooks]:
    cameras = tmp_path_factory.mktemp("camera")
    quadrants = textured_quadrants_y4m(cameras / "textured.y4m")
    hd_y4m = cameras / "quadrants720.y4m"
    write_quadrants_y4m(hd_y4m, 1280, 720)
    llama = _llama_cell(llama_server)
    with contextlib.ExitStack() as stack:

        def browser(y4m: Path | None, **options: Any) -> Browser:
            # One sync Playwright per process: later browsers come from the session's.
            launched = launch_chromium(chromium.browser_type, y4m, **options)
            stack.callback(launched.close)
            return launched

        def notebook(browser: Browser, name: str, cells: list[str], camera: bool) -> NotebookPage:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, permissions=["camera"] if camera else []
            )
            stack.callback(context.close)
            jupyter_lab.put_notebook(name, cells)
            nb = NotebookPage(context.new_page())
            nb.open(jupyter_lab, name, wait=False)
            return nb

        quadrant_browser = browser(quadrants, auto_allow=False)  # the context decides
        # A fixed send size: no probe requests mixed into the counts of the tests below.
        gapp = _app_cell(gated.base_url, "gapp", model="gated", interval=0.1, send_size="original")
        main = notebook(quadrant_browser, "camera_main.ipynb", [llama, gapp], camera=True)
        opened = Notebooks(
            main=main,
            main_context=main.page.context,
            denied=notebook(quadrant_browser, "camera_denied.ipynb", [llama], camera=False),
            devices=notebook(browser(None, fake_devices=2), "camera_devices.ipynb", [llama], camera=True),
            no_camera=notebook(browser(None, fake_devices=0), "camera_none.ipynb", [llama], camera=True),
            hd=notebook(browser(hd_y4m), "camera_hd.ipynb", [llama], camera=True),
        )
        for nb in opened.all():
            nb.wait_open()
        cells = [(nb, 0) for nb in opened.all()] + [(main, 1)]
        for nb, index in cells:
            nb.run_cell(index, wait=False)
        for nb, index in cells:
            assert nb.wait_cell(index), nb.cell_text(index)
        yield opened
        for nb in opened.all():
            _shut(nb)


@pytest.fixture(autouse=True)
def _screenshot_on_failure(
    request: pytest.FixtureRequest, notebooks: Notebooks, artifacts_dir: Path
) -> Iterator[None]:
    yield
    for nb in notebooks.all():
        _report_failure(request, nb, artifacts_dir)


def _only(request: pytest.FixtureRequest, nb: NotebookPage, artifacts_dir: Path) -> Iterator[NotebookPage]:
    """A notebook used by one test: closed after it, so its camera stops using the CPU."""
    yield nb
    _report_failure(request, nb, artifacts_dir)
    _shut(nb)
    nb.page.close()


@pytest.fixture
def denied_nb(
    request: pytest.FixtureRequest, notebooks: Notebooks, artifacts_dir: Path
) -> Iterator[NotebookPage]:
    yield from _only(request, notebooks.denied, artifacts_dir)


@pytest.fixture
def no_camera_nb(
    request: pytest.FixtureRequest, notebooks: Notebooks, artifacts_dir: Path
) -> Iterator[NotebookPage]:
    yield from _only(request, notebooks.no_camera, artifacts_dir)


@pytest.fixture
def devices_nb(
    request: pytest.FixtureRequest, notebooks: Notebooks, artifacts_dir: Path
) -> Iterator[NotebookPage]:
    yield from _only(request, notebooks.devices, artifacts_dir)


@pytest.fixture
def hd_nb(
    request: pytest.FixtureRequest, notebooks: Notebooks, artifacts_dir: Path
) -> Iterator[NotebookPage]:
    yield from _only(request, notebooks.hd, artifacts_dir)


@pytest.fixture
def main_nb(notebooks: Notebooks) -> NotebookPage:
    Panel(notebooks.main, 0).wait_live()
    Panel(notebooks.main, 1).wait_live()
    return notebooks.main


# -- cameras that are denied, missing, several or HD -----------------------------------------


def test_denied_camera_is_shown_and_send_once_explains(denied_nb: NotebookPage) -> None:
    nb = denied_nb
    panel = Panel(nb, 0)
    expect(panel.view_badge).to_have_attribute("data-state", "denied", timeout=WAIT_MS)
    expect(panel.camera_badge).to_have_text(f"camera: denied ({DENIED})", timeout=WAIT_MS)
    last = panel.send_once()
    assert last["error"] == DENIED, last
    expect(panel.status).to_have_text(f"error: {DENIED}", timeout=WAIT_MS)
    assert facts(nb)["states"] == ["off", "starting", "denied"]


def _dark(last: dict[str, Any]) -> bool:
    """A frame of ``fake_device_1`` (dark grey), not of ``fake_device_0`` (green)."""
    return float(decode(last)[:, :, 1].mean()) < 60.0


def test_device_picker_lists_and_switches_cameras_while_live(devices_nb: NotebookPage) -> None:
    nb = devices_nb
    panel = Panel(nb, 0)
    panel.wait_live()
    # After permission, the dropdown lists the cameras by their labels.
    labels = ["Default camera", "fake_device_0", "fake_device_1"]
    expect(panel.device.locator("option")).to_have_text(labels, timeout=WAIT_MS)
    devices = facts(nb)["devices"]
    assert [d["label"] for d in devices] == labels[1:]
    assert all(d["id"] for d in devices)

    panel.run.click()
    expect(panel.run_badge).to_have_text("live", timeout=WAIT_MS)
    first = wait_facts(nb, "a live answer", lambda f: "last" in f, jpeg=True)["last"]
    assert first["error"] is None and not _dark(first)  # the default is fake_device_0

    # Record what the camera badge shows while switching.
    panel.camera_badge.evaluate(
        """(el) => { window.__badges = [];
            new MutationObserver(() => window.__badges.push(el.textContent))
              .observe(el, { childList: true, characterData: true, subtree: true }); }"""
    )
    for label, dark in (("fake_device_1", True), ("fake_device_0", False)):
        panel.device.select_option(label=label)

        def from_it(f: dict[str, Any], dark: bool = dark) -> bool:
            return f["last"]["error"] is None and _dark(f["last"]) == dark

        switched = wait_facts(nb, f"a frame from {label} at the kernel", from_it, jpeg=True)
        # The live session keeps answering, from the new camera.
        later = wait_answers(nb, switched["count"] + 2, f"answers after switching to {label}", jpeg=True)
        assert later["last"]["error"] is None and _dark(later["last"]) == dark
        assert facts(nb)["device_id"] == next(d["id"] for d in devices if d["label"] == label)
        expect(panel.camera_badge).to_have_text("camera: live 640×480", timeout=WAIT_MS)
        expect(panel.run_badge).to_have_text("live")
    shown: list[str] = panel.camera_badge.evaluate("() => window.__badges")
    assert shown.count("camera: starting") == 2, shown

    panel.run.click()
    expect(panel.run_badge).to_have_text("idle", timeout=WAIT_MS)
    end = facts(nb)
    assert end["states"] == ["off", "starting", "live", "starting", "live", "starting", "live"], end
    assert end["errors"] == [], end["errors"]  # not one request failed across the switches


def test_no_camera_is_shown_and_send_once_explains(no_camera_nb: NotebookPage) -> None:
    nb = no_camera_nb
    panel = Panel(nb, 0)
    expect(panel.view_badge).to_have_attribute("data-state", "no-camera", timeout=WAIT_MS)
    expect(panel.camera_badge).to_have_text("camera: no-camera (no camera found)", timeout=WAIT_MS)
    last = panel.send_once()
    assert last["error"] == "no camera found", last
    expect(panel.status).to_have_text("error: no camera found", timeout=WAIT_MS)
    expect(panel.device.locator("option")).to_have_text(["Default camera"])
    assert facts(nb)["states"] == ["off", "starting", "no-camera"]


def test_a_720p_camera_delivers_720p_and_480p_is_downscaled(hd_nb: NotebookPage) -> None:
    nb = hd_nb
    panel = Panel(nb, 0)
    expect(panel.camera_badge).to_have_text("camera: live 1280×720", timeout=WAIT_MS)
    for choice, (width, height) in (("480p", (640, 480)), ("720p", (1280, 720))):
        panel.resolution.select_option(choice)
        expect(panel.camera_badge).to_have_text(f"camera: live {width}×{height}", timeout=WAIT_MS)
        expect(panel.note).to_have_text("")
        last = panel.send_once(jpeg=True)
        assert last["error"] is None and (last["width"], last["height"]) == (width, height)
        image = decode(last)
        assert image.shape == (height, width, 3)
        assert_quadrants(image)  # scaled (for 4:3 also cropped) about the centre: same layout


# -- the quadrant camera, llama-server ----------------------------------------------------------


def test_resolution_480p_is_exact_and_720p_falls_back_with_a_note(main_nb: NotebookPage) -> None:
    panel = Panel(main_nb, 0)
    expect(panel.camera_badge).to_have_text("camera: live 640×480", timeout=WAIT_MS)
    # The kernel saw the view go from off through starting to live.
    assert facts(main_nb)["states"][:3] == ["off", "starting", "live"]

    panel.resolution.select_option("720p")
    # The 640×480 camera cannot do it: live at what it can, and the panel says so.
    expect(panel.camera_badge).to_have_text(f"camera: live 640×480 ({NO_720P})", timeout=WAIT_MS)
    expect(panel.note).to_have_text(NO_720P)
    expect(panel.view_badge).to_have_attribute("data-state", "live")
    last = panel.send_once(jpeg=True)
    assert last["error"] is None and last["text"]
    assert (last["width"], last["height"]) == (640, 480)
    assert_quadrants(decode(last))

    panel.resolution.select_option("480p")
    expect(panel.camera_badge).to_have_text("camera: live 640×480", timeout=WAIT_MS)  # no note
    expect(panel.note).to_have_text("")
    last = panel.send_once(jpeg=True)
    assert last["error"] is None and (last["width"], last["height"]) == (640, 480)
    assert_quadrants(decode(last))
    assert facts(main_nb)["resolution"] == "480p"

    panel.resolution.select_option("auto")
    wait_facts(main_nb, "resolution back to auto", lambda f: f["resolution"] == "auto")
    panel.wait_live()


def _set_quality(nb: NotebookPage, panel: Panel, value: str) -> None:
    """Type ``value`` into the slider's editable readout, as a user would, and press Enter."""
    panel.quality.click()
    panel.quality.fill(value)
    panel.quality.press("Enter")
    wait_facts(nb, f"JPEG quality {value} in the kernel", lambda f: abs(f["quality"] - float(value)) < 1e-9)
    expect(panel.quality).to_have_text(f"{float(value):.2f}")


def test_jpeg_quality_slider_sets_the_encoder(main_nb: NotebookPage, llama_server: LlamaServer) -> None:
    panel = Panel(main_nb, 0)
    panel.wait_live()
    assert facts(main_nb)["quality"] == 0.8
    expect(panel.quality).to_have_text("0.80")

    _set_quality(main_nb, panel, "0.95")
    high = panel.send_once(jpeg=True)
    _set_quality(main_nb, panel, "0.5")
    low = panel.send_once(jpeg=True)

    assert high["error"] is None and low["error"] is None
    # Same picture, coarser encoding: clearly fewer bytes.
    assert low["size"] < 0.6 * high["size"], (low["size"], high["size"])
    for last in (high, low):
        assert_quadrants(decode(last))
        # The server took the image: the text-only request costs exactly its tokens less.
        assert last["prompt_tokens"] - text_only_prompt_tokens(llama_server, PROMPT) == IMAGE_TOKENS
        assert last["completion_tokens"] == MAX_TOKENS

    _set_quality(main_nb, panel, "0.8")


def _screenshot_top_quadrants(video: Locator) -> tuple[str, str]:
    """Nearest quadrant colour of the top left and top right of the preview as shown."""
    png = video.screenshot()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    means = quadrant_means(image.astype(np.uint8))
    return nearest_quadrant_color(means["top_left"]), nearest_quadrant_color(means["top_right"])


def test_mirror_flips_the_preview_but_not_the_frames(main_nb: NotebookPage) -> None:
    panel = Panel(main_nb, 0)
    panel.wait_live()
    assert _screenshot_top_quadrants(panel.video) == ("top_left", "top_right")

    panel.mirror.check()
    wait_facts(main_nb, "mirror on in the kernel", lambda f: f["mirror"] is True)
    expect(panel.video).to_have_css("transform", "matrix(-1, 0, 0, 1, 0, 0)")
    # What the user sees is flipped: the green quadrant is now on the left.
    assert _screenshot_top_quadrants(panel.video) == ("top_right", "top_left")
    # What the model gets is not: red still top left.
    last = panel.send_once(jpeg=True)
    assert last["error"] is None
    assert_quadrants(decode(last))

    panel.mirror.uncheck()
    expect(panel.video).to_have_css("transform", "none")
    wait_facts(main_nb, "mirror off in the kernel", lambda f: f["mirror"] is False)


def test_start_stop_and_space_toggle_live(main_nb: NotebookPage) -> None:
    panel = Panel(main_nb, 0)
    panel.wait_live()
    expect(panel.run_badge).to_have_text("idle")

    # Start / Stop buttons.
    count = facts(main_nb)["count"]
    panel.run.click()
    expect(panel.run_badge).to_have_text("live", timeout=WAIT_MS)
    expect(panel.run).to_have_text("Stop")
    wait_answers(main_nb, count + 3, "live answers after Start")
    panel.run.click()
    expect(panel.run_badge).to_have_text("idle", timeout=WAIT_MS)
    expect(panel.run).to_have_text("Start")
    expect(panel.status).to_have_text("stopped")
    last = facts(main_nb)["last"]
    assert last["error"] is None and last["text"]

    # Space with the focus in the panel (click the video) toggles live, both ways.
    panel.video.click()
    count = facts(main_nb)["count"]
    main_nb.page.keyboard.press("Space")
    expect(panel.run_badge).to_have_text("live", timeout=WAIT_MS)
    expect(panel.run).to_have_text("Stop")
    wait_answers(main_nb, count + 3, "live answers after Space")
    main_nb.page.keyboard.press("Space")
    expect(panel.run_badge).to_have_text("idle", timeout=WAIT_MS)
    expect(panel.run).to_have_text("Start")

    # Send once: exactly one more answer, and the run stays idle.
    before = facts(main_nb)["count"]
    last = panel.send_once()
    assert last["error"] is None and last["text"]
    expect(panel.run_badge).to_have_text("idle")
    assert facts(main_nb)["count"] == before + 1


def test_stop_cancels_the_request_in_flight(main_nb: NotebookPage, gated: GatedServer) -> None:
    panel = Panel(main_nb, 1)
    panel.wait_live()
    gated.hold()
    assert facts(main_nb, "gapp")["count"] == 0 and not gated.requests

    panel.run.click()
    assert gated.received.wait(WAIT_S), "Start sent no request"
    expect(panel.run_badge).to_have_text("live", timeout=WAIT_MS)
    assert not gated.hung_up.is_set()
    panel.run.click()
    # The kernel closed the connection of the held request: it was cancelled, not abandoned.
    if not gated.hung_up.wait(WAIT_S):
        pool = "gapp._controller.client._http._transport._pool.connections"  # diagnosis only
        state = main_nb.run_code(f"print({pool}, gapp._controller._live, gapp._controller._inflight)")
        raise AssertionError(
            f"Stop did not close the request's connection; {len(gated.requests)} requests; {state}"
        )
    expect(panel.run_badge).to_have_text("idle", timeout=WAIT_MS)
    expect(panel.run).to_have_text("Start")
    expect(panel.status).to_have_text("stopped")

    # With the server free again, Send once is answered, and it is the only answer there is:
    # nothing ever came of the stopped request.
    gated.release()
    last = panel.send_once("gapp")
    assert last["text"] == GATED_ANSWER and last["error"] is None
    expect(panel.answer).to_have_value(GATED_ANSWER, timeout=WAIT_MS)
    assert facts(main_nb, "gapp")["count"] == 1
    assert len(gated.image_requests) == 2


def test_typing_spaces_in_the_instruction_does_not_toggle_live(
    main_nb: NotebookPage, gated: GatedServer
) -> None:
    panel = Panel(main_nb, 1)
    panel.wait_live()
    gated.release()
    expect(panel.run_badge).not_to_have_text("live")
    requests, count = len(gated.image_requests), facts(main_nb, "gapp")["count"]

    panel.prompt.click()
    main_nb.page.keyboard.press("ControlOrMeta+A")
    main_nb.page.keyboard.type("a b c")
    panel.prompt.blur()  # the prompt box syncs when it loses focus
    expect(panel.prompt).to_have_value("a b c")
    wait_facts(main_nb, "the typed prompt in the kernel", lambda f: f["prompt"] == "a b c", "gapp")

    # The click's message reaches the kernel after any toggle the spaces could have sent: had
    # they toggled live (on and off: two spaces), live requests would show up here.
    last = panel.send_once("gapp")
    assert last["prompt"] == "a b c" and last["text"] == GATED_ANSWER
    expect(panel.run_badge).to_have_text("idle")
    expect(panel.run).to_have_text("Start")
    assert facts(main_nb, "gapp")["count"] == count + 1
    assert len(gated.image_requests) == requests + 1
    # The server got the spaces too.
    content = gated.requests[-1]["messages"][-1]["content"]
    texts = [part["text"] for part in content if part["type"] == "text"]
    assert texts == ["a b c"]


def test_camera_that_ends_mid_session_is_shown_and_send_once_explains(
    main_nb: NotebookPage, notebooks: Notebooks
) -> None:
    panel, other = Panel(main_nb, 0), Panel(main_nb, 1)
    panel.run.click()
    expect(panel.run_badge).to_have_text("live", timeout=WAIT_MS)
    wait_answers(main_nb, facts(main_nb)["count"] + 2, "live answers")

    # Revoking the permission makes Chromium end the camera's tracks (a real `ended` event).
    notebooks.main_context.clear_permissions()
    expect(panel.view_badge).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    expect(panel.camera_badge).to_have_text(f"camera: ended ({ENDED})", timeout=WAIT_MS)
    # The live loop records why it gets no frames (no stale picture is sent instead).
    wait_facts(main_nb, "a live request failing with the reason", lambda f: f["last"]["error"] == ENDED)
    panel.run.click()
    expect(panel.run_badge).to_have_text("idle", timeout=WAIT_MS)
    last = panel.send_once()
    assert last["error"] == ENDED, last
    expect(panel.status).to_have_text(f"error: {ENDED}", timeout=WAIT_MS)

    # Restarted without the permission (here: another resolution), the camera is denied.
    panel.resolution.select_option("480p")
    expect(panel.camera_badge).to_have_text(f"camera: denied ({DENIED})", timeout=WAIT_MS)
    assert panel.send_once()["error"] == DENIED

    # Allowed again, a restart brings it back.
    notebooks.main_context.grant_permissions(["camera"])
    panel.resolution.select_option("auto")
    other.resolution.select_option("480p")
    for view in (panel, other):
        expect(view.camera_badge).to_have_text("camera: live 640×480", timeout=WAIT_MS)
    last = panel.send_once()
    assert last["error"] is None and (last["width"], last["height"]) == (640, 480)
    states = facts(main_nb)["states"]
    assert states[-6:] == ["live", "ended", "starting", "denied", "starting", "live"], states
