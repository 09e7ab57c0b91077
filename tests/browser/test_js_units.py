"""Unit tests of the front end's own parts, in headless Chromium without JupyterLab or a kernel.

js/widget.js, log.js and plot.js are imported from blob URLs, as anywidget loads ``_esm`` (so a
relative import in them would fail here too), and rendered against a mock model that records
get/set/on/off/send/save_changes. The page's origin is routed by Playwright (nothing listens
there): localhost keeps it a secure context, so the fake camera (tests/browser/conftest.py)
works. Pure helpers are the named exports; anywidget itself only takes the default export.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route

from rtvlm_widget._sendsize import scaled_size

JS = Path(__file__).resolve().parents[2] / "js"
ORIGIN = "http://localhost:8123"

# The mock model: values and Backbone-like change events, and a record of every call.
HARNESS = """
async (sources) => {
  const load = (text) => import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  window.widget = await load(sources.widget);
  window.logView = await load(sources.log);
  window.plotView = await load(sources.plot);
  window.mockModel = (traits) => {
    const values = { ...traits };
    const handlers = new Map();
    const calls = { on: [], off: [], sent: [], saves: 0 };
    const emit = (event, ...args) => {
      for (const handler of [...(handlers.get(event) ?? [])]) handler(...args);
    };
    return {
      values, calls, emit,
      get: (name) => values[name],
      set(name, value) {
        const old = values[name];
        values[name] = value;
        if (old !== value) emit(`change:${name}`, this, value);
      },
      save_changes() { calls.saves++; },
      send(content, callbacks, buffers) {
        const bytes = (buffers ?? []).map((b) => new Uint8Array(b instanceof ArrayBuffer ? b : b.buffer));
        const heads = bytes.map((b) => [...b.slice(0, 3)]);
        calls.sent.push({ content, sizes: bytes.map((b) => b.length), heads });
      },
      on(event, handler) {
        calls.on.push([event, handler]);
        if (!handlers.has(event)) handlers.set(event, []);
        handlers.get(event).push(handler);
      },
      off(event, handler) {
        calls.off.push([event, handler]);
        const list = handlers.get(event) ?? [];
        if (list.includes(handler)) list.splice(list.indexOf(handler), 1);
      },
      // Listeners still attached, and whether every on() was undone by an off() of the same pair.
      listening: () => [...handlers.values()].reduce((n, list) => n + list.length, 0),
      allOff: () =>
        calls.on.length === calls.off.length &&
        calls.on.every(([e, h]) => calls.off.some(([e2, h2]) => e === e2 && h === h2)),
    };
  };
  // A mounted view: its model, element and cleanup, for the test to drive.
  window.mount = (module, traits) => {
    const model = mockModel(traits);
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = module.default.render({ model, el });
    return { model, el, cleanup };
  };
}
"""

CAMERA_TRAITS: dict[str, Any] = {
    "camera_state": "off",
    "camera_message": "",
    "video_width": 0,
    "video_height": 0,
    "devices": [],
    "device_id": "",
    "resolution": "auto",
    "jpeg_quality": 0.8,
    "mirror": False,
    "overlay": True,
    "shapes_visible": True,
    "source": "camera",
    "live": False,
    "send_edge": 0,
}


def _route(route: Route) -> None:
    route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>units</title>")


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route(f"{ORIGIN}/**", _route)
    page.goto(f"{ORIGIN}/")
    page.evaluate(
        HARNESS, {name: (JS / f"{name}.js").read_text(encoding="utf-8") for name in ("widget", "log", "plot")}
    )
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


def _sent(page: Page) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = page.evaluate("t.model.calls.sent")
    return sent


def _wait_sent(page: Page, kind: str, count: int = 1) -> list[dict[str, Any]]:
    page.wait_for_function(
        "([kind, count]) => t.model.calls.sent.filter((m) => m.content.kind === kind).length >= count",
        arg=[kind, count],
        timeout=10_000,
    )
    return [m for m in _sent(page) if m["content"]["kind"] == kind]


# -- pure helpers -----------------------------------------------------------------------------------


def test_describe_camera_error(page: Page) -> None:
    described = page.evaluate("""() => {
      const d = widget.describeCameraError;
      return {
        denied: d(new DOMException("no", "NotAllowedError")),
        insecure: d(new DOMException("no", "SecurityError")),
        missing: d(new DOMException("none", "NotFoundError")),
        size: d(new DOMException("too big", "OverconstrainedError")),
        busy: d(new DOMException("in use", "NotReadableError")),
        plain: d(new TypeError("odd")),
        text: d("just text"),
      };
    }""")
    assert described["denied"][0] == described["insecure"][0] == "denied"
    assert "permission denied" in described["denied"][1]
    assert described["missing"] == described["size"] == ["no-camera", "no camera found"]
    assert described["busy"] == ["error", "NotReadableError: in use"]
    assert described["plain"] == ["error", "Error: odd"]
    assert described["text"] == ["error", "Error: just text"]


def test_label_colors_are_stable_contrasting_and_spread(page: Page) -> None:
    result = page.evaluate("""() => {
      const labels = ["cup", "person", "dog", "car", "", "日本", "😀", "a", "b", "c", "d", "e"];
      return {
        palette: widget.SHAPE_COLORS,
        colors: labels.map((l) => widget.labelColor(l)),
        again: labels.map((l) => widget.labelColor(l)),
      };
    }""")
    palette = [tuple(pair) for pair in result["palette"]]
    colors = [tuple(pair) for pair in result["colors"]]
    assert colors == [tuple(pair) for pair in result["again"]]
    assert all(color in palette for color in colors)
    assert colors[4] == palette[0]  # the empty label hashes to 0
    assert len(set(colors)) >= 5  # a hash that spreads, not one colour for all
    for fill, ink in palette:  # each tag's text readable on its fill: WCAG's 3:1 for large text
        assert _contrast(fill, ink) >= 3, (fill, ink)


def _luminance(color: str) -> float:
    """WCAG relative luminance of "#rgb" or "#rrggbb"."""
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_capture_size_rounds_like_the_kernel(page: Page) -> None:
    rng = random.Random(16)
    cases = [(640, 480, 320), (641, 481, 100), (1920, 1080, 0), (1280, 720, 2000), (5, 3, 4), (3, 1000, 1)]
    cases += [(rng.randint(1, 4000), rng.randint(1, 4000), rng.randint(0, 4000)) for _ in range(300)]
    sizes = page.evaluate("(cases) => cases.map(([w, h, e]) => widget.scaledSize(w, h, e))", cases)
    assert [tuple(size) for size in sizes] == [scaled_size(*case) for case in cases]


def test_box_and_point_coordinates(page: Page) -> None:
    result = page.evaluate("""() => {
      const box = { kind: "box", x1: 0.1, y1: 0.2, x2: 0.5, y2: 0.6 };
      const swapped = { kind: "box", x1: 0.5, y1: 0.6, x2: 0.1, y2: 0.2 };
      const whole = { kind: "box", x1: 0, y1: 0, x2: 1, y2: 1 };
      const point = { kind: "point", x: 0.25, y: 0.5 };
      return {
        plain: widget.boxRect(box, 200, 100, false, 0),
        swapped: widget.boxRect(swapped, 200, 100, false, 0),
        mirrored: widget.boxRect(box, 200, 100, true, 0),
        inset: widget.boxRect(whole, 200, 100, false, 2),
        point: widget.pointAt(point, 200, 100, false),
        pointMirrored: widget.pointAt(point, 200, 100, true),
      };
    }""")
    plain = {"left": 20, "right": 100, "top": 20, "bottom": 60}
    assert result["plain"] == pytest.approx(plain)
    assert result["swapped"] == pytest.approx(plain)
    assert result["mirrored"] == pytest.approx({"left": 100, "right": 180, "top": 20, "bottom": 60})
    assert result["inset"] == pytest.approx({"left": 2, "right": 198, "top": 2, "bottom": 98})
    assert result["point"] == pytest.approx([50, 50])
    assert result["pointMirrored"] == pytest.approx([150, 50])


def test_drawable_shapes_keep_only_known_kinds_with_finite_coordinates(page: Page) -> None:
    kept = page.evaluate("""() => widget.drawableShapes([
      { kind: "box", x1: 0, y1: 0, x2: 1, y2: 1, label: "ok" },
      { kind: "point", x: 0.5, y: 0.5 },
      { kind: "box", x1: 0, y1: 0, x2: NaN, y2: 1 },
      { kind: "box", x1: "0", y1: 0, x2: 1, y2: 1 },
      { kind: "point", x: 0.5 },
      { kind: "circle", x: 0.5, y: 0.5 },
      null,
      "box",
    ])""")
    assert kept == [
        {"kind": "box", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "label": "ok"},
        {"kind": "point", "x": 0.5, "y": 0.5},
    ]
    assert page.evaluate("widget.drawableShapes({ kind: 'box' })") == []


def test_contained_rect_letterboxes_the_picture(page: Page) -> None:
    rects = page.evaluate("""() => {
      const box = document.createElement("div");
      box.style.cssText = "position: relative; width: 400px; height: 300px";
      const shown = document.createElement("div");
      shown.style.cssText = "width: 400px; height: 300px";
      box.append(shown);
      document.body.append(box);
      return {
        wide: widget.containedRect(shown, 640, 360),
        tall: widget.containedRect(shown, 300, 600),
        none: widget.containedRect(shown, 0, 480),
      };
    }""")
    assert rects["wide"] == pytest.approx({"left": 0, "top": 37.5, "width": 400, "height": 225})
    assert rects["tall"] == pytest.approx({"left": 125, "top": 0, "width": 150, "height": 300})
    assert rects["none"] is None


def test_paint_shapes_draws_where_the_coordinates_say(page: Page) -> None:
    pixels = page.evaluate("""() => {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 100;
      const at = (x, y) => [...canvas.getContext("2d").getImageData(x, y, 1, 1).data];
      widget.paintShapes(canvas, [{ kind: "box", x1: 0.2, y1: 0.2, x2: 0.8, y2: 0.8 }], false, 1);
      const box = { edge: at(20, 50), inside: at(50, 50), outside: at(5, 50) };
      widget.paintShapes(canvas, [{ kind: "point", x: 0.25, y: 0.5 }], true, 1);
      const point = { flipped: at(75, 50), unflipped: at(25, 50), oldBox: at(20, 50) };
      return { box, point, color: widget.labelColor("")[0] };
    }""")
    color = pixels["color"]
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    assert pixels["box"]["edge"] == [*rgb, 255]
    assert pixels["box"]["inside"] == pixels["box"]["outside"] == [0, 0, 0, 0]
    assert pixels["point"]["flipped"] == [*rgb, 255]  # mirrored: x = 1 - 0.25
    assert pixels["point"]["unflipped"] == pixels["point"]["oldBox"] == [0, 0, 0, 0]  # cleared first


def test_reasoning_summary_and_typing_targets(page: Page) -> None:
    result = page.evaluate("""() => {
      const editable = document.createElement("div");
      editable.contentEditable = "true";
      document.body.append(editable);
      return {
        thinking: widget.reasoningSummary("one two\\n  three ", false),
        done: widget.reasoningSummary("", true),
        typing: [document.createElement("input"), document.createElement("textarea"), editable]
          .map((e) => widget.isTyping(e)),
        notTyping: [document.createElement("button"), document.body, null].map((e) => widget.isTyping(e)),
      };
    }""")
    assert result["thinking"] == "Thinking… (3 words)"
    assert result["done"] == "Reasoning (0 words)"
    assert result["typing"] == [True, True, True]
    assert result["notTyping"] == [False, False, False]


def test_open_camera_falls_back_when_the_size_is_refused(page: Page) -> None:
    result = page.evaluate("""async () => {
      const media = navigator.mediaDevices;
      const real = media.getUserMedia.bind(media);
      const asked = [];
      // A camera that refuses every exact size: the nearest one it offers is used, and said.
      media.getUserMedia = async (constraints) => {
        asked.push(constraints.video);
        if (constraints.video.width?.exact) throw new DOMException("", "OverconstrainedError");
        return real({ video: true });
      };
      const opened = await widget.openCamera("cam-1", "720p");
      opened.stream.getTracks().forEach((t) => t.stop());
      // Any other failure is the caller's to report, with no second try.
      media.getUserMedia = async (constraints) => {
        asked.push(constraints.video);
        throw new DOMException("", "NotAllowedError");
      };
      const refused = await widget.openCamera("", "480p").then(() => "opened", (e) => e.name);
      return { note: opened.note, asked, refused };
    }""")
    assert result["note"] == "this camera cannot deliver 1280×720; using 640×480"
    assert result["asked"] == [
        {"deviceId": {"exact": "cam-1"}, "width": {"exact": 1280}, "height": {"exact": 720}},
        {"deviceId": {"exact": "cam-1"}, "width": {"ideal": 1280}, "height": {"ideal": 720}},
        {"width": {"exact": 640}, "height": {"exact": 480}},
    ]
    assert result["refused"] == "NotAllowedError"


def test_log_cells(page: Page) -> None:
    cells = page.evaluate("""() => [
      logView.cells({ time: "12:00:01", model: "m", latency_ms: 123.6, status: "ok", tokens: "5+3",
                      text: "first line\\nsecond" }),
      logView.cells({ time: "12:00:02", model: "m", latency_ms: null, status: "error", tokens: "",
                      text: undefined }),
    ]""")
    assert cells == [
        ["12:00:01", "m", "124 ms", "ok", "5+3", "first line"],
        ["12:00:02", "m", "", "error", "", ""],
    ]


# -- render() and its cleanup -----------------------------------------------------------------------


def test_camera_view_round_trip_and_cleanup(page: Page) -> None:
    page.evaluate("(traits) => { window.t = mount(widget, traits); }", CAMERA_TRAITS)
    page.wait_for_function("t.model.values.camera_state === 'live'", timeout=20_000)
    values = page.evaluate("t.model.values")
    assert (values["video_width"], values["video_height"]) == (640, 480)
    page.wait_for_function("t.model.values.devices.length > 0")

    # capture: a JPEG of the asked size, with the page's timings
    page.evaluate("t.model.emit('msg:custom', { kind: 'capture', seq: 7, max_edge: 320 }, [])")
    (frame,) = _wait_sent(page, "frame")
    content = frame["content"]
    assert {k: content[k] for k in ("seq", "width", "height", "mime")} == {
        "seq": 7,
        "width": 320,
        "height": 240,
        "mime": "image/jpeg",
    }
    assert all(isinstance(content[k], (int, float)) for k in ("captured_at_ms", "draw_ms", "encode_ms"))
    assert frame["heads"] == [[0xFF, 0xD8, 0xFF]] and frame["sizes"][0] > 1000

    # Send once: the frame goes with the ask
    page.click(".rtvlm-send-once")
    (ask,) = _wait_sent(page, "ask")
    assert ask["content"]["seq"] == 1 and ask["content"]["width"] == 640 and len(ask["sizes"]) == 1

    # keys and the Start/Stop button
    page.evaluate("""() => {
      const space = () => new KeyboardEvent("keydown", { key: " ", bubbles: true, cancelable: true });
      t.el.querySelector(".rtvlm-view").dispatchEvent(space());
      t.el.querySelector(".rtvlm-answer textarea").dispatchEvent(space()); // typing: not a toggle
      document.body.dispatchEvent(space()); // outside the panel: not ours
    }""")
    assert len(_wait_sent(page, "toggle_live")) == 1
    page.click(".rtvlm-run")
    assert len(_wait_sent(page, "toggle_live", 2)) == 2
    page.evaluate("t.model.set('live', true)")
    assert page.inner_text(".rtvlm-run") == "Stop"

    # overlay: the answer's text and shapes, then the "shown" note; the reasoning box
    page.evaluate("""() => t.model.emit("msg:custom", {
      kind: "answer", seq: 9, text: "a cup", final: true,
      shapes: [{ kind: "box", x1: 0.1, y1: 0.1, x2: 0.5, y2: 0.5, label: "cup" }],
    }, [])""")
    (shown,) = _wait_sent(page, "shown")
    assert shown["content"]["seq"] == 9
    assert page.inner_text(".rtvlm-overlay") == "a cup"
    assert page.input_value(".rtvlm-answer textarea") == "a cup"
    assert page.evaluate("({ ...t.el.querySelector('.rtvlm-shapes').dataset })") == {"seq": "9", "count": "1"}
    page.evaluate(
        "t.model.emit('msg:custom', { kind: 'reasoning', seq: 10, text: 'hmm let me see', final: false })"
    )
    assert page.inner_text(".rtvlm-reasoning summary") == "Thinking… (4 words)"

    # cleanup: every listener off, the camera's tracks stopped, nothing sent afterwards
    after = page.evaluate("""async () => {
      const video = t.el.querySelector("video");
      const tracks = video.srcObject.getTracks();
      const sent = t.model.calls.sent.length;
      const saves = t.model.calls.saves;
      t.cleanup();
      const space = new KeyboardEvent("keydown", { key: " ", bubbles: true });
      t.el.querySelector(".rtvlm-view").dispatchEvent(space);
      t.el.querySelector(".rtvlm-run").click();
      t.el.querySelector(".rtvlm-send-once").click();
      navigator.mediaDevices.dispatchEvent(new Event("devicechange"));
      t.model.set("live", false);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return {
        ons: t.model.calls.on.length,
        allOff: t.model.allOff(),
        listening: t.model.listening(),
        tracks: tracks.map((track) => track.readyState),
        srcObject: video.srcObject,
        newSends: t.model.calls.sent.length - sent,
        newSaves: t.model.calls.saves - saves,
        runLabel: t.el.querySelector(".rtvlm-run").textContent,
      };
    }""")
    assert after["ons"] >= 9 and after["allOff"] and after["listening"] == 0
    assert after["tracks"] and set(after["tracks"]) == {"ended"}
    assert after["srcObject"] is None
    assert after["newSends"] == after["newSaves"] == 0
    assert after["runLabel"] == "Stop"  # change:live no longer heard


def test_kernel_source_view_never_opens_the_camera_and_cleans_up(page: Page) -> None:
    page.evaluate(
        """(traits) => {
          window.cameraCalls = 0;
          const media = navigator.mediaDevices;
          const real = media.getUserMedia.bind(media);
          media.getUserMedia = (c) => { cameraCalls++; return real(c); };
          window.t = mount(widget, { ...traits, source: "clip.mp4" });
        }""",
        CAMERA_TRAITS,
    )
    assert page.inner_text(".rtvlm-badge") == "kernel source: clip.mp4"
    assert page.evaluate(
        "[t.el.querySelector('video').hidden, t.el.querySelector('.rtvlm-preview').hidden]"
    ) == [
        True,
        False,
    ]

    page.evaluate("t.model.emit('msg:custom', { kind: 'capture', seq: 3 }, [])")
    (error,) = _wait_sent(page, "error")
    assert error["content"] == {
        "kind": "error",
        "seq": 3,
        "message": "frames come from the kernel (clip.mp4), not this camera",
    }
    page.click(".rtvlm-send-once")
    (ask,) = _wait_sent(page, "ask")
    assert ask["content"] == {"kind": "ask", "seq": 1} and ask["sizes"] == []

    page.evaluate("""async () => {
      const canvas = new OffscreenCanvas(64, 48);
      canvas.getContext("2d").fillRect(0, 0, 64, 48);
      const jpeg = await (await canvas.convertToBlob({ type: "image/jpeg" })).arrayBuffer();
      t.model.emit("msg:custom", { kind: "preview", width: 64, height: 48 }, [new DataView(jpeg)]);
    }""")
    page.wait_for_function("t.el.querySelector('.rtvlm-preview').width === 64")
    assert page.inner_text(".rtvlm-badge") == "kernel source: clip.mp4 64×48"
    page.evaluate("t.model.set('camera_state', 'ended')")
    assert page.inner_text(".rtvlm-badge") == "kernel source: clip.mp4 64×48 (ended)"

    after = page.evaluate("""() => {
      t.cleanup();
      const preview = t.el.querySelector(".rtvlm-preview");
      const size = [preview.width, preview.height];
      return { allOff: t.model.allOff(), listening: t.model.listening(), size };
    }""")
    assert after == {"allOff": True, "listening": 0, "size": [0, 0]}
    assert page.evaluate("cameraCalls") == 0


def test_log_and_plot_views_clean_up(page: Page) -> None:
    result = page.evaluate("""() => {
      const log = mount(logView, { max_rows: 2, autoscroll: true });
      const rows = [1, 2, 3].map((i) =>
        ({ time: `t${i}`, model: "m", latency_ms: i, status: "ok", tokens: "", text: `a${i}` }));
      log.model.emit("msg:custom", { kind: "rows", rows, reset: false });
      const shown = [...log.el.querySelectorAll("tbody tr")].map((tr) => tr.cells[0].textContent);
      log.cleanup();
      const plot = mount(plotView, { samples: [[120, 40, 30], [200, null, null]], p50_ms: 120, p95_ms: 200 });
      const label = plot.el.querySelector(".rtvlm-plot-label").textContent;
      plot.cleanup();
      return {
        replay: log.model.calls.sent.map((m) => m.content),
        shown,
        label,
        logOff: log.model.allOff() && log.model.listening() === 0,
        plotOff: plot.model.allOff() && plot.model.listening() === 0,
      };
    }""")
    assert result["replay"] == [{"kind": "replay"}]
    assert result["shown"] == ["t2", "t3"]  # max_rows keeps the newest
    assert result["label"] == "end to end p50 120 ms · p95 200 ms · model p50 30 ms · n=2"
    assert result["logOff"] and result["plotOff"]
