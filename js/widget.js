// rtvlm-widget camera view: preview, device/resolution choice, frame capture, the run buttons and
// the answer box (anywidget ES module).
//
// The kernel asks for a frame ({kind: "capture", seq}); this view grabs the current video frame,
// encodes it as JPEG and answers with the bytes as a binary comm buffer ({kind: "frame", seq, …}),
// or with {kind: "error", seq, message}. Frames never go through synced traits or base64.
// A click on Send once grabs the frame at once and sends it with the ask ({kind: "ask", seq, …}
// and the JPEG buffer), so the request leaves the kernel without a round trip back to this page.
// Start/Stop (and Space) send {kind: "toggle_live"}; the kernel's `live` trait labels the button.
// Answers ({kind: "answer"}) fill the overlay and the answer box from the one message.
// With a kernel-side source (the `source` trait is not "camera") the camera is never opened: the
// kernel sends {kind: "preview", width, height} with each frame it uses as a JPEG buffer, and the
// view draws it where the video would be. A final answer may carry boxes and points (fractions 0–1
// of the frame sent), drawn on a canvas laid exactly over the picture until the next final answer.
// Protocol twin: rtvlm_widget/_protocol.py.

/** @typedef {{ kind: "capture", seq: number, max_edge?: number }} CaptureRequest */
/** @typedef {{ kind: "box", x1: number, y1: number, x2: number, y2: number, label?: string }} BoxShape */
/** @typedef {{ kind: "point", x: number, y: number, label?: string }} PointShape */
/** @typedef {BoxShape | PointShape} Shape */
/** @typedef {{ kind: "answer", seq: number, text: string, final?: boolean, shapes?: Shape[] }} ShowAnswer */
/** @typedef {{ kind: "reasoning", seq: number, text: string, final: boolean }} ShowReasoning */
/** @typedef {{ kind: "preview", width: number, height: number }} Preview */
/** @typedef {CaptureRequest | ShowAnswer | ShowReasoning | Preview} KernelMessage */
/** @typedef {ArrayBuffer | DataView<ArrayBuffer>} CommBuffer a binary buffer as ipywidgets hands it over */

/**
 * The parts of anywidget's model the views use (log.js and plot.js too), typed by the widget's
 * synced traits T. Event handlers stay loose: Backbone passes each event its own arguments.
 * @template {object} T
 * @typedef {object} Model
 * @property {<K extends keyof T>(name: K) => T[K]} get
 * @property {<K extends keyof T>(name: K, value: T[K]) => void} set
 * @property {() => void} save_changes
 * @property {(content: object, callbacks?: object, buffers?: ArrayBuffer[]) => void} send
 * @property {(event: string, handler: (...args: any[]) => void) => void} on
 * @property {(event: string, handler?: (...args: any[]) => void) => void} off
 */

/**
 * The camera view's synced traits: CameraView in rtvlm_widget/_widget.py.
 * @typedef {object} CameraTraits
 * @property {string} camera_state
 * @property {string} camera_message
 * @property {number} video_width
 * @property {number} video_height
 * @property {{ id: string, label: string }[]} devices
 * @property {string} device_id "" for the default camera
 * @property {string} resolution a RESOLUTIONS key or "auto"
 * @property {number} jpeg_quality 0..1
 * @property {boolean} mirror
 * @property {boolean} overlay
 * @property {boolean} shapes_visible
 * @property {string} source "camera", or what the kernel reads frames from
 * @property {boolean} live
 * @property {number} send_edge longest edge of a Send once frame (0: as it is)
 */

/** Requested sizes per resolution choice ("auto": whatever the camera gives by default). */
const RESOLUTIONS = /** @type {Record<string, [number, number]>} */ ({
  "480p": [640, 480],
  "720p": [1280, 720],
  "1080p": [1920, 1080],
});

const CSS = `
.rtvlm-view { position: relative; width: 100%; background: #000; border-radius: 4px;
  overflow: hidden; aspect-ratio: 4 / 3; outline: none; }
.rtvlm-view:focus-visible { box-shadow: 0 0 0 2px var(--jp-brand-color1, #1976d2); }
.rtvlm-view video { width: 100%; height: 100%; object-fit: contain; display: block; }
.rtvlm-view video.rtvlm-mirrored { transform: scaleX(-1); }
.rtvlm-view canvas.rtvlm-preview { width: 100%; height: 100%; object-fit: contain; display: block; }
.rtvlm-view canvas.rtvlm-preview.rtvlm-mirrored { transform: scaleX(-1); }
.rtvlm-view video[hidden], .rtvlm-view canvas.rtvlm-preview[hidden] { display: none; }
.rtvlm-view canvas.rtvlm-shapes { position: absolute; pointer-events: none; }
.rtvlm-view canvas.rtvlm-shapes[hidden] { display: none; }
.rtvlm-badge { position: absolute; top: 6px; left: 6px; padding: 1px 8px; border-radius: 10px;
  font: 12px var(--jp-ui-font-family, sans-serif); color: #fff; background: rgba(0,0,0,0.6); }
.rtvlm-badge[data-state="live"] { background: rgba(20,140,60,0.85); }
.rtvlm-badge[data-state="kernel"] { background: rgba(40,90,160,0.85); }
.rtvlm-badge[data-state="denied"], .rtvlm-badge[data-state="no-camera"],
.rtvlm-badge[data-state="error"], .rtvlm-badge[data-state="ended"] { background: rgba(180,40,40,0.9); }
.rtvlm-note { position: absolute; top: 30px; left: 6px; right: 6px; padding: 2px 8px;
  font: 12px var(--jp-ui-font-family, sans-serif); color: #fff; background: rgba(120,80,0,0.85);
  border-radius: 4px; }
.rtvlm-note:empty { display: none; }
.rtvlm-overlay { position: absolute; left: 0; right: 0; bottom: 0; padding: 6px 10px;
  font: 14px var(--jp-ui-font-family, sans-serif); color: #fff; background: rgba(0,0,0,0.55);
  white-space: pre-wrap; max-height: 40%; overflow: hidden; }
.rtvlm-overlay:empty, .rtvlm-overlay[hidden] { display: none; }
.rtvlm-panel .rtvlm-badge-run, .rtvlm-panel .rtvlm-badge-camera, .rtvlm-panel .rtvlm-badge-api {
  padding: 0 8px; margin: 0 2px; border-radius: 10px; font-size: 12px; }
.rtvlm-runbar { display: flex; flex-wrap: wrap; align-items: center; gap: 4px; margin: 4px 0 2px; }
.rtvlm-runbar button { width: auto; min-width: 96px; }
.rtvlm-runbar button i { margin-right: 4px; }
.rtvlm-answer textarea { box-sizing: border-box; width: 100%; height: 5em; resize: vertical;
  font: var(--jp-content-font-size1, 14px) var(--jp-ui-font-family, sans-serif);
  color: var(--jp-ui-font-color0, #111); background: var(--jp-layout-color0, #fff);
  border: var(--jp-border-width, 1px) solid var(--jp-border-color1, #bdbdbd); border-radius: 2px;
  padding: 4px 6px; }
.rtvlm-reasoning { margin: 2px 0; font: 12px var(--jp-ui-font-family, sans-serif);
  color: var(--jp-ui-font-color2, #616161); }
.rtvlm-reasoning summary { cursor: pointer; }
.rtvlm-reasoning-text { white-space: pre-wrap; max-height: 12em; overflow: auto; padding: 2px 6px;
  border-left: 2px solid var(--jp-border-color2, #e0e0e0); }
`;

/**
 * Name the camera state for a getUserMedia failure.
 * @param {unknown} error
 * @returns {[string, string]} state and message
 */
function describeCameraError(error) {
  const name = error instanceof DOMException ? error.name : "";
  const text = error instanceof Error ? error.message : String(error);
  if (name === "NotAllowedError" || name === "SecurityError") {
    return ["denied", "camera permission denied; allow the camera for this page (needs https or localhost)"];
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return ["no-camera", "no camera found"];
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    return ["error", "this page cannot use the camera (it needs https or localhost)"];
  }
  return ["error", `${name || "Error"}: ${text}`];
}

/**
 * Open the camera as asked; if it cannot do the size (or the device is gone), fall back and say so.
 * @param {string} deviceId "" for the default camera
 * @param {string} resolution a RESOLUTIONS key or "auto"
 * @returns {Promise<{ stream: MediaStream, note: string }>}
 */
async function openCamera(deviceId, resolution) {
  const size = RESOLUTIONS[resolution];
  /** @type {MediaTrackConstraints} */
  const base = deviceId ? { deviceId: { exact: deviceId } } : {};
  if (!size) {
    return { stream: await navigator.mediaDevices.getUserMedia({ video: base, audio: false }), note: "" };
  }
  const [width, height] = size;
  try {
    const exact = { ...base, width: { exact: width }, height: { exact: height } };
    return { stream: await navigator.mediaDevices.getUserMedia({ video: exact, audio: false }), note: "" };
  } catch (error) {
    if (!(error instanceof DOMException) || error.name !== "OverconstrainedError") throw error;
  }
  // The camera cannot do that size: take the nearest it offers rather than failing.
  const ideal = { ...base, width: { ideal: width }, height: { ideal: height } };
  const stream = await navigator.mediaDevices.getUserMedia({ video: ideal, audio: false });
  const got = stream.getVideoTracks()[0]?.getSettings() ?? {};
  return { stream, note: `this camera cannot deliver ${width}×${height}; using ${got.width}×${got.height}` };
}

/** @typedef {HTMLCanvasElement | OffscreenCanvas} FrameCanvas */

/**
 * The canvas frames are drawn and encoded on: an OffscreenCanvas where the browser has one. Its
 * convertToBlob was the fastest way to a JPEG in the JupyterLab page in three of four runs of
 * benchmarks/e2e.py (part g, 640×480, p50 5–8 ms), ahead of canvas.toBlob and toDataURL by 0–2 ms
 * and of a Worker fed by createImageBitmap (whose hand-over costs more than it saves) by 2–9 ms.
 * @returns {FrameCanvas}
 */
function frameCanvas() {
  return typeof OffscreenCanvas === "function" ? new OffscreenCanvas(1, 1) : document.createElement("canvas");
}

/**
 * @param {FrameCanvas} canvas
 * @param {number} quality
 * @returns {Promise<Blob>}
 */
function encodeJpeg(canvas, quality) {
  if (!(canvas instanceof HTMLCanvasElement)) return canvas.convertToBlob({ type: "image/jpeg", quality });
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("JPEG encoding failed"))), "image/jpeg", quality),
  );
}

/**
 * The size a width×height frame is sent at: its longest edge at most maxEdge (0: as it is), never
 * enlarged. Twin: scaled_size in rtvlm_widget/_sendsize.py.
 * @param {number} width
 * @param {number} height
 * @param {number} maxEdge
 * @returns {[number, number]}
 */
function scaledSize(width, height, maxEdge) {
  const scale = maxEdge > 0 ? Math.min(1, maxEdge / Math.max(width, height)) : 1;
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/**
 * Grab the current video frame, downscaled so its longest edge is at most maxEdge (0: as is).
 * Drawn from the video element itself, so a mirrored preview still sends unmirrored frames.
 * @param {HTMLVideoElement} video
 * @param {FrameCanvas} canvas
 * @param {number} maxEdge
 * @param {number} quality JPEG quality 0..1
 * @returns {Promise<{ bytes: ArrayBuffer, width: number, height: number, capturedAt: number, drawMs: number, encodeMs: number }>}
 */
async function grabJpeg(video, canvas, maxEdge, quality) {
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  if (!vw || !vh) throw new Error("the camera has not delivered a frame yet");
  const [width, height] = scaledSize(vw, vh, maxEdge);
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = /** @type {CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d"));
  const t0 = performance.now();
  const capturedAt = performance.timeOrigin + t0;
  ctx.drawImage(video, 0, 0, width, height);
  const drawn = performance.now();
  const blob = await encodeJpeg(canvas, quality);
  const bytes = await blob.arrayBuffer();
  return { bytes, width, height, capturedAt, drawMs: drawn - t0, encodeMs: performance.now() - drawn };
}

/**
 * Shape colours as [stroke and tag fill, tag text]: bright enough to read over video, each with the
 * text colour that contrasts with it.
 * @type {[string, string][]}
 */
const SHAPE_COLORS = [
  ["#ff3b30", "#fff"],
  ["#34c759", "#000"],
  ["#0a84ff", "#fff"],
  ["#ffd60a", "#000"],
  ["#ff9f0a", "#000"],
  ["#bf5af2", "#fff"],
  ["#64d2ff", "#000"],
  ["#ff2d92", "#fff"],
  ["#a2f54a", "#000"],
  ["#ffffff", "#000"],
];

/**
 * The colour of a label: a hash of its text, so "cup" has the same colour in every answer and view.
 * @param {string} label
 * @returns {[string, string]}
 */
function labelColor(label) {
  let hash = 0;
  for (const ch of label) hash = (Math.imul(hash, 31) + (ch.codePointAt(0) ?? 0)) | 0;
  return SHAPE_COLORS[(hash >>> 0) % SHAPE_COLORS.length];
}

/**
 * Where a picture of width×height appears inside an element showing it with object-fit: contain,
 * letterboxed, in CSS px from the element's offset parent (the view).
 * @param {HTMLElement} element the <video> or the preview <canvas>
 * @param {number} width the picture's own size
 * @param {number} height
 * @returns {{ left: number, top: number, width: number, height: number } | null}
 */
function containedRect(element, width, height) {
  const boxWidth = element.clientWidth;
  const boxHeight = element.clientHeight;
  if (!width || !height || !boxWidth || !boxHeight) return null;
  const scale = Math.min(boxWidth / width, boxHeight / height);
  const shownWidth = width * scale;
  const shownHeight = height * scale;
  return {
    left: element.offsetLeft + element.clientLeft + (boxWidth - shownWidth) / 2,
    top: element.offsetTop + element.clientTop + (boxHeight - shownHeight) / 2,
    width: shownWidth,
    height: shownHeight,
  };
}

/**
 * The shapes of a message that can be drawn: known kinds with finite coordinates.
 * @param {unknown} shapes
 * @returns {Shape[]}
 */
function drawableShapes(shapes) {
  if (!Array.isArray(shapes)) return [];
  /** @param {...unknown} values */
  const finite = (...values) => values.every((v) => typeof v === "number" && Number.isFinite(v));
  return shapes.filter(
    (s) =>
      s &&
      typeof s === "object" &&
      ((s.kind === "box" && finite(s.x1, s.y1, s.x2, s.y2)) || (s.kind === "point" && finite(s.x, s.y))),
  );
}

/** @param {number} v @param {number} lo @param {number} hi */
function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

/**
 * A box's edges in canvas pixels: its fractions scaled to the canvas, x flipped when mirrored,
 * corners in either order, and inset so a box along the picture's edge keeps all four sides visible.
 * @param {BoxShape} box
 * @param {number} width the canvas's size
 * @param {number} height
 * @param {boolean} mirror
 * @param {number} inset half the line's width
 * @returns {{ left: number, top: number, right: number, bottom: number }}
 */
function boxRect(box, width, height, mirror, inset) {
  const xa = (mirror ? 1 - box.x1 : box.x1) * width;
  const xb = (mirror ? 1 - box.x2 : box.x2) * width;
  return {
    left: clamp(Math.min(xa, xb), inset, width - inset),
    right: clamp(Math.max(xa, xb), inset, width - inset),
    top: clamp(Math.min(box.y1, box.y2) * height, inset, height - inset),
    bottom: clamp(Math.max(box.y1, box.y2) * height, inset, height - inset),
  };
}

/**
 * A point's position in canvas pixels, x flipped when mirrored.
 * @param {PointShape} point
 * @param {number} width the canvas's size
 * @param {number} height
 * @param {boolean} mirror
 * @returns {[number, number]}
 */
function pointAt(point, width, height, mirror) {
  return [(mirror ? 1 - point.x : point.x) * width, point.y * height];
}

/**
 * Draw boxes and points on a canvas covering exactly the picture; x flipped for a mirrored preview
 * (the canvas itself is not mirrored, so labels stay readable). Labels are drawn as canvas text.
 * @param {HTMLCanvasElement} canvas
 * @param {Shape[]} shapes
 * @param {boolean} mirror
 * @param {number} scale device pixels per CSS pixel
 */
function paintShapes(canvas, shapes, mirror, scale) {
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  const width = canvas.width;
  const height = canvas.height;
  ctx.clearRect(0, 0, width, height);
  const line = Math.max(2, Math.round(2 * scale));
  const half = line / 2;
  const fontSize = Math.round(12 * scale);
  const pad = Math.round(3 * scale);
  const tagHeight = fontSize + 2 * pad;
  ctx.font = `${fontSize}px var(--jp-ui-font-family, sans-serif)`;
  ctx.textBaseline = "middle";
  /** @type {(() => void)[]} */
  const tags = []; // drawn after every outline, so no box's line crosses a label

  /** @param {string} label @param {number} x left edge wanted @param {number} y top edge */
  function tag(label, x, y) {
    const [fill, ink] = labelColor(label);
    const text = label.length > 60 ? `${label.slice(0, 59)}…` : label;
    const tagWidth = Math.ceil(ctx.measureText(text).width) + 2 * pad;
    const left = clamp(x, 0, Math.max(0, width - tagWidth));
    const top = clamp(y, 0, Math.max(0, height - tagHeight));
    tags.push(() => {
      ctx.fillStyle = fill;
      ctx.fillRect(left, top, tagWidth, tagHeight);
      ctx.fillStyle = ink;
      ctx.fillText(text, left + pad, top + tagHeight / 2);
    });
  }

  for (const shape of shapes) {
    const label = String(shape.label ?? "");
    const [color, ink] = labelColor(label);
    if (shape.kind === "box") {
      const { left, top, right, bottom } = boxRect(shape, width, height, mirror, half);
      // A faint dark rim under the line keeps a box visible on a picture of its own colour.
      ctx.strokeStyle = "rgba(0, 0, 0, 0.5)";
      ctx.lineWidth = line + 2 * Math.max(1, Math.round(scale));
      ctx.strokeRect(left, top, right - left, bottom - top);
      ctx.strokeStyle = color;
      ctx.lineWidth = line;
      ctx.strokeRect(left, top, right - left, bottom - top);
      // The tag sits on the box's top edge, outside it when there is room above.
      if (label) tag(label, left - half, top - half >= tagHeight ? top - half - tagHeight : top + half);
    } else {
      const [x, y] = pointAt(shape, width, height, mirror);
      const radius = Math.max(3, Math.round(4 * scale));
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.fillStyle = color;
      ctx.fill();
      ctx.lineWidth = Math.max(1, scale);
      ctx.strokeStyle = ink; // a contrasting ring keeps the dot visible on its own colour
      ctx.stroke();
      if (label) tag(label, x + radius + pad, y - tagHeight / 2);
    }
  }
  for (const draw of tags) draw();
}

/**
 * A button styled like the ipywidgets ones around it.
 * @param {string} name its class, by which tests and styles find it
 * @param {string} title
 */
function button(name, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `jupyter-widgets jupyter-button widget-button ${name}`;
  b.title = title;
  return b;
}

/** @param {string} name a Font Awesome icon, as ipywidgets buttons use */
function icon(name) {
  const i = document.createElement("i");
  i.className = `fa fa-${name}`;
  return i;
}

/**
 * The reasoning box's title: how far the model's thinking has got, or how long it was.
 * @param {string} text the reasoning so far
 * @param {boolean} final
 */
function reasoningSummary(text, final) {
  const words = text.split(/\s+/).filter(Boolean).length;
  return final ? `Reasoning (${words} words)` : `Thinking… (${words} words)`;
}

/** @param {EventTarget | null} target */
function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

/**
 * The elements of one camera view, built inside `el`: the picture (video, or the kernel's frames
 * on a canvas) with the shapes canvas, badge, note and overlay over it, the run buttons and the
 * answer box with the reasoning under it.
 * @param {HTMLElement} el
 */
function buildView(el) {
  const style = document.createElement("style");
  style.textContent = CSS;
  const root = document.createElement("div");
  root.className = "rtvlm-view";
  root.tabIndex = 0; // clicking the video gives the panel focus, for the Space shortcut
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.autoplay = true;
  const badge = document.createElement("span");
  badge.className = "rtvlm-badge";
  const note = document.createElement("div");
  note.className = "rtvlm-note";
  const overlay = document.createElement("div");
  overlay.className = "rtvlm-overlay";
  // Kernel-side sources: the frames the kernel sends are drawn here instead of the video.
  const preview = document.createElement("canvas");
  preview.className = "rtvlm-preview";
  preview.hidden = true;
  preview.width = preview.height = 0; // nothing to show before the first frame (not 300×150 blank)
  // Boxes and points of the last final answer, over the picture (after it: painted above it).
  const shapesCanvas = document.createElement("canvas");
  shapesCanvas.className = "rtvlm-shapes";
  shapesCanvas.hidden = true;
  shapesCanvas.width = shapesCanvas.height = 0;
  root.append(video, preview, shapesCanvas, badge, note, overlay);
  // The run buttons live here, beside the video, so a click can take its frame at once.
  const runbar = document.createElement("div");
  runbar.className = "rtvlm-runbar";
  const runButton = button("rtvlm-run", "Start or stop asking about frames continuously (Space)");
  runButton.classList.add("widget-toggle-button");
  const sendButton = button("rtvlm-send-once", "Ask about the current frame once");
  sendButton.append(icon("paper-plane"), "Send once");
  runbar.append(runButton, sendButton);
  // The latest answer, written from the same message as the overlay; read-only text, never HTML.
  const answerWrap = document.createElement("div");
  answerWrap.className = "rtvlm-answer";
  const answerBox = document.createElement("textarea");
  answerBox.readOnly = true;
  answerBox.placeholder = "The latest answer appears here.";
  answerBox.setAttribute("aria-label", "Latest answer");
  answerWrap.append(answerBox);
  // A thinking model's reasoning: apart from the answer, dim and folded; never over the video.
  const reasoning = document.createElement("details");
  reasoning.className = "rtvlm-reasoning";
  reasoning.hidden = true;
  const reasoningTitle = document.createElement("summary");
  const reasoningText = document.createElement("div");
  reasoningText.className = "rtvlm-reasoning-text";
  reasoning.append(reasoningTitle, reasoningText);
  answerWrap.append(reasoning);
  el.append(style, root, runbar, answerWrap);
  return { root, video, preview, shapesCanvas, badge, note, overlay, runButton, sendButton, answerBox,
    reasoning, reasoningTitle, reasoningText };
}

/** @typedef {ReturnType<typeof buildView>} View */

/**
 * What the parts of one view share.
 * @typedef {object} Shared
 * @property {Model<CameraTraits>} model
 * @property {View} view
 * @property {(content: Record<string, unknown>, buffers?: ArrayBuffer[]) => void} send to the
 *   kernel, unless the view or the kernel is gone
 * @property {() => boolean} kernelSource true when frames come from the kernel (a file, a stream…),
 *   not from this browser's camera
 * @property {() => boolean} disposed true once the view's cleanup has begun
 */

/**
 * Add model listeners; the returned function removes exactly those.
 * @template {object} T
 * @param {Model<T>} model
 * @param {[string, (...args: any[]) => void][]} listeners
 * @returns {() => void}
 */
function listen(model, listeners) {
  for (const [event, handler] of listeners) model.on(event, handler);
  return () => {
    for (const [event, handler] of listeners) model.off(event, handler);
  };
}

/**
 * Camera: open the browser's camera as the device_id and resolution traits say, keep the device
 * list and the camera state in the model, stop the tracks when done; or stand aside (camera
 * closed, preview canvas shown) while the `source` trait says the kernel sends the frames.
 * @param {Shared} shared
 * @param {() => void} redraw lays the shapes over the picture again
 * @param {() => void} showKernelBadge
 */
function cameraPart({ model, view, kernelSource, disposed }, redraw, showKernelBadge) {
  const { video, preview, badge, note } = view;
  /** @type {MediaStream | null} */
  let stream = null;
  let generation = 0; // bumps on every (re)start, so a slow old start cannot win
  /** @type {Promise<void>} */
  let ready = Promise.resolve();

  /** @param {string} state @param {string} message */
  function setState(state, message = "") {
    badge.dataset.state = state;
    badge.textContent = state === "live" ? `live ${video.videoWidth}×${video.videoHeight}` : state;
    model.set("camera_state", state);
    model.set("camera_message", message);
    if (state === "live") {
      model.set("video_width", video.videoWidth);
      model.set("video_height", video.videoHeight);
    }
    model.save_changes();
  }

  async function listDevices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    const cams = all
      .filter((d) => d.kind === "videoinput")
      .map((d, i) => ({ id: d.deviceId, label: d.label || `camera ${i + 1}` }));
    model.set("devices", cams);
    model.save_changes();
  }

  function stopStream() {
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
  }

  async function startCamera() {
    const mine = ++generation;
    stopStream();
    setState("starting");
    note.textContent = "";
    try {
      const opened = await openCamera(model.get("device_id") || "", model.get("resolution") || "auto");
      if (disposed() || mine !== generation) {
        opened.stream.getTracks().forEach((t) => t.stop());
        return;
      }
      stream = opened.stream;
      for (const track of stream.getVideoTracks()) {
        track.addEventListener("ended", () => {
          if (mine === generation) setState("ended", "the camera stopped delivering video");
        });
      }
      video.srcObject = stream;
      await video.play();
      // "playing" can come before the first decoded frame; a canvas drawn then is blank.
      await new Promise((resolve) => video.requestVideoFrameCallback(() => resolve(undefined)));
      if (mine !== generation) return;
      note.textContent = opened.note;
      setState("live", opened.note);
      await listDevices(); // labels are only readable once permission is granted
    } catch (error) {
      if (!disposed() && mine === generation) setState(...describeCameraError(error));
      throw error;
    }
  }

  function restart() {
    if (kernelSource()) return; // device and resolution belong to the camera
    ready = startCamera();
    ready.catch(() => {}); // the state badge already says what went wrong
  }

  /** Camera or kernel frames, as the `source` trait says (the kernel sets it at creation). */
  function applySource() {
    const kernel = kernelSource();
    video.hidden = kernel;
    preview.hidden = !kernel;
    redraw();
    if (!kernel) {
      restart();
      return;
    }
    generation++; // a camera start under way gives up
    stopStream();
    video.srcObject = null;
    note.textContent = "";
    showKernelBadge();
  }

  const onDeviceChange = () => void listDevices().catch(() => {});
  const unlisten = listen(model, [
    ["change:device_id", restart],
    ["change:resolution", restart],
    ["change:source", applySource],
  ]);
  navigator.mediaDevices?.addEventListener?.("devicechange", onDeviceChange);
  applySource();

  return {
    /** Wait for the newest camera start: a restart may begin while we wait. Throws if it failed. */
    async settled() {
      for (let current = ready; ; current = ready) {
        await current;
        if (current === ready) break;
      }
    },
    /** Whether the camera delivers video now: an ended track leaves its last picture in the video. */
    delivering() {
      return stream?.getVideoTracks()[0]?.readyState === "live";
    },
    cleanup() {
      generation++; // a start under way stops the tracks it gets
      unlisten();
      navigator.mediaDevices?.removeEventListener?.("devicechange", onDeviceChange);
      stopStream();
      video.srcObject = null;
    },
  };
}

/**
 * Kernel frames: with a kernel-side source, draw the JPEG frames the kernel sends where the video
 * would be (the newest wins; older ones not drawn yet are dropped) and name the source on the badge.
 * @param {Shared} shared
 * @param {() => void} redraw lays the shapes over the picture again
 */
function kernelFramesPart({ model, view, kernelSource, disposed }, redraw) {
  const { preview, badge } = view;
  /** @type {CommBuffer | null} */
  let pending = null;
  let drawing = false;
  let drawnOnce = false;

  /** The kernel sets camera_state for its source too: "ended" (a file without loop) or "error". */
  function showBadge() {
    if (!kernelSource()) return;
    const state = model.get("camera_state");
    const trouble = state === "ended" || state === "error";
    badge.dataset.state = trouble ? state : "kernel";
    const size = drawnOnce ? ` ${preview.width}×${preview.height}` : "";
    badge.textContent = `kernel source: ${model.get("source")}${size}${trouble ? ` (${state})` : ""}`;
  }

  async function drawPending() {
    drawing = true;
    try {
      while (pending && !disposed()) {
        const blob = new Blob([pending], { type: "image/jpeg" });
        pending = null;
        /** @type {ImageBitmap} */
        let bitmap;
        try {
          bitmap = await createImageBitmap(blob);
        } catch {
          continue; // a frame that does not decode: keep showing the last good one
        }
        if (disposed() || !kernelSource()) {
          bitmap.close();
          break;
        }
        const resized = preview.width !== bitmap.width || preview.height !== bitmap.height;
        if (preview.width !== bitmap.width) preview.width = bitmap.width;
        if (preview.height !== bitmap.height) preview.height = bitmap.height;
        /** @type {CanvasRenderingContext2D} */ (preview.getContext("2d")).drawImage(bitmap, 0, 0);
        if (resized) redraw(); // another aspect ratio moves the letterbox
        bitmap.close();
        drawnOnce = true;
        showBadge();
      }
    } finally {
      drawing = false;
    }
  }

  const unlisten = listen(model, [["change:camera_state", showBadge]]);

  return {
    showBadge,
    /** @param {CommBuffer | undefined} buffer the frame's JPEG */
    show(buffer) {
      if (!buffer || !kernelSource()) return;
      pending = buffer;
      if (!drawing) void drawPending();
    },
    cleanup() {
      unlisten();
      pending = null;
      preview.width = preview.height = 0; // frees the canvas's pixels now, not at collection
    },
  };
}

/**
 * Capture: grab the current camera frame and encode it as JPEG, to answer the kernel's capture
 * requests and to send with a click on "Send once" (an ask).
 * @param {Shared} shared
 * @param {{ settled(): Promise<void>, delivering(): boolean }} camera
 */
function capturePart({ model, view, send, kernelSource }, camera) {
  const canvas = frameCanvas();
  let asks = 0;

  /**
   * A fresh camera frame as JPEG: the message fields and the bytes. Throws when there is none.
   * @param {number} maxEdge
   * @returns {Promise<[Record<string, unknown>, ArrayBuffer]>}
   */
  async function takeFrame(maxEdge) {
    if (kernelSource()) throw new Error(`frames come from the kernel (${model.get("source")}), not this camera`);
    await camera.settled();
    // An ended track leaves its last picture in the <video>: never send that as a fresh frame.
    if (!camera.delivering()) throw new Error("the camera is not delivering video");
    const frame = await grabJpeg(view.video, canvas, maxEdge, model.get("jpeg_quality"));
    const fields = {
      width: frame.width,
      height: frame.height,
      mime: "image/jpeg",
      captured_at_ms: frame.capturedAt,
      draw_ms: frame.drawMs,
      encode_ms: frame.encodeMs,
    };
    return [fields, frame.bytes];
  }

  /** @param {unknown} error */
  function cameraProblem(error) {
    return model.get("camera_message") || (error instanceof Error ? error.message : String(error));
  }

  /** Send once: the frame leaves with the click (a kernel source: the kernel takes its own). */
  async function sendOnce() {
    const seq = ++asks;
    if (kernelSource()) {
      send({ kind: "ask", seq });
      return;
    }
    try {
      const [fields, bytes] = await takeFrame(Number(model.get("send_edge")) || 0);
      send({ kind: "ask", seq, ...fields }, [bytes]);
    } catch {
      send({ kind: "ask", seq }); // no frame: the kernel asks for one, and reports why it failed
    }
  }

  const onSendClick = () => void sendOnce();
  view.sendButton.addEventListener("click", onSendClick);

  return {
    /** @param {CaptureRequest} msg */
    async answer(msg) {
      try {
        const [fields, bytes] = await takeFrame(msg.max_edge ?? 0);
        send({ kind: "frame", seq: msg.seq, ...fields }, [bytes]);
      } catch (error) {
        send({ kind: "error", seq: msg.seq, message: cameraProblem(error) });
      }
    },
    cleanup() {
      view.sendButton.removeEventListener("click", onSendClick);
    },
  };
}

/**
 * Overlay: the answer's text over the picture and in the answer box, its boxes and points on a
 * canvas laid exactly over the picture, and the reasoning box; and how the picture is shown
 * (mirrored, overlay on or off).
 * @param {Shared} shared
 */
function overlayPart({ model, view, send, kernelSource, disposed }) {
  const { root, video, preview, shapesCanvas, overlay, answerBox } = view;
  /** @type {Shape[]} */
  let shapes = [];
  let shapesSeq = -1;
  let lastShownNote = -Infinity;

  /** Lay the shapes canvas over the picture as shown now (letterbox included) and draw on it. */
  function drawShapes() {
    if (disposed()) return;
    const kernel = kernelSource();
    const shown = kernel ? preview : video;
    const rect =
      shapes.length && model.get("shapes_visible") && !shown.hidden
        ? containedRect(shown, kernel ? preview.width : video.videoWidth, kernel ? preview.height : video.videoHeight)
        : null;
    shapesCanvas.dataset.seq = String(shapesSeq);
    shapesCanvas.dataset.count = String(rect ? shapes.length : 0);
    if (!rect) {
      shapesCanvas.hidden = true;
      shapesCanvas.width = shapesCanvas.height = 0; // nothing stale shows when it comes back
      return;
    }
    Object.assign(shapesCanvas.style, {
      left: `${rect.left}px`,
      top: `${rect.top}px`,
      width: `${rect.width}px`,
      height: `${rect.height}px`,
    });
    // Backing pixels at the screen's density, so lines and labels stay sharp.
    const scale = window.devicePixelRatio || 1;
    shapesCanvas.width = Math.max(1, Math.round(rect.width * scale));
    shapesCanvas.height = Math.max(1, Math.round(rect.height * scale));
    shapesCanvas.hidden = false;
    paintShapes(shapesCanvas, shapes, Boolean(model.get("mirror")), scale);
  }

  function applyView() {
    const mirror = Boolean(model.get("mirror"));
    video.classList.toggle("rtvlm-mirrored", mirror);
    preview.classList.toggle("rtvlm-mirrored", mirror);
    overlay.hidden = !model.get("overlay");
    drawShapes();
  }

  // The picture's box changes with the panel's width; its content with the camera's resolution.
  const resizeObserver = new ResizeObserver(() => drawShapes());
  resizeObserver.observe(root);
  resizeObserver.observe(video);
  resizeObserver.observe(preview);
  video.addEventListener("resize", drawShapes);
  const unlisten = listen(model, [
    ["change:mirror", applyView],
    ["change:overlay", applyView],
    ["change:shapes_visible", drawShapes],
  ]);
  applyView();

  return {
    redraw: drawShapes,
    /** @param {ShowAnswer} msg */
    showAnswer(msg) {
      const text = String(msg.text ?? "");
      overlay.textContent = text; // model output is text, never HTML
      answerBox.value = text;
      // Only whole answers carry shapes (absent: none, clearing); a streamed part leaves the last
      // answer's in place.
      if (msg.final) {
        shapes = drawableShapes(msg.shapes);
        shapesSeq = msg.seq;
        drawShapes();
      }
      // Tell the kernel when a whole answer is on screen (the "display" phase of its timing), for
      // at most two answers a second: each note costs the kernel a message round, which at 30
      // answers a second shows in the frame rate.
      if (msg.final && performance.now() - lastShownNote >= 500) {
        lastShownNote = performance.now();
        requestAnimationFrame(() =>
          send({ kind: "shown", seq: msg.seq, shown_at_ms: performance.timeOrigin + performance.now() }),
        );
      }
    },
    /** @param {ShowReasoning} msg */
    showReasoning(msg) {
      const text = String(msg.text ?? "");
      view.reasoning.hidden = !text;
      view.reasoningTitle.textContent = reasoningSummary(text, Boolean(msg.final));
      view.reasoningText.textContent = text; // model output is text, never HTML
    },
    cleanup() {
      unlisten();
      resizeObserver.disconnect();
      video.removeEventListener("resize", drawShapes);
      shapes = [];
      shapesCanvas.width = shapesCanvas.height = 0;
    },
  };
}

/**
 * Live mode's switch: the Start/Stop button shows the kernel's `live` trait; it and Space (while
 * focus is in this panel, never while typing) ask the kernel to toggle it.
 * @param {Shared} shared
 * @param {HTMLElement} el the view's element, inside the panel
 */
function keysPart({ model, view, send }, el) {
  const { runButton } = view;

  function showLive() {
    const live = Boolean(model.get("live"));
    runButton.replaceChildren(icon(live ? "stop" : "play"), live ? "Stop" : "Start");
    runButton.classList.toggle("mod-active", live);
    runButton.setAttribute("aria-pressed", String(live));
  }

  const onRunClick = () => send({ kind: "toggle_live" });

  /** @param {KeyboardEvent} event */
  function onKey(event) {
    if (event.key !== " " || event.repeat || isTyping(event.target)) return;
    const panel = el.closest(".rtvlm-panel") ?? el;
    if (!(event.target instanceof Node) || !panel.contains(event.target)) return;
    event.preventDefault(); // no button "click", no page scroll
    event.stopPropagation(); // and not JupyterLab's command-mode shortcuts
    send({ kind: "toggle_live" });
  }

  showLive();
  runButton.addEventListener("click", onRunClick);
  document.addEventListener("keydown", onKey, true);
  const unlisten = listen(model, [["change:live", showLive]]);

  return {
    cleanup() {
      unlisten();
      runButton.removeEventListener("click", onRunClick);
      document.removeEventListener("keydown", onKey, true);
    },
  };
}

/**
 * One camera view: its parts above (overlay, kernel frames, camera, capture, keys), each holding
 * its own listeners and returning its cleanup, and the kernel's messages routed to them.
 * @param {{ model: Model<CameraTraits>, el: HTMLElement }} ctx
 * @returns {() => void} cleanup
 */
function render({ model, el }) {
  const view = buildView(el);
  let disposed = false;
  /** @type {Shared} */
  const shared = {
    model,
    view,
    // After a kernel restart or shutdown the comm is dead and ipywidgets throws ("Cannot send");
    // a late reply or note then has nobody to tell.
    send(content, buffers) {
      if (disposed) return;
      try {
        model.send(content, undefined, buffers ?? []);
      } catch {
        // the kernel is gone: nothing to do
      }
    },
    kernelSource() {
      const source = model.get("source");
      return Boolean(source) && source !== "camera";
    },
    disposed: () => disposed,
  };
  const overlay = overlayPart(shared);
  const frames = kernelFramesPart(shared, overlay.redraw);
  const camera = cameraPart(shared, overlay.redraw, frames.showBadge);
  const capture = capturePart(shared, camera);
  const keys = keysPart(shared, el);

  /** @param {KernelMessage} msg @param {CommBuffer[]} [buffers] */
  function onMessage(msg, buffers) {
    if (disposed || !msg || typeof msg !== "object") return;
    if (msg.kind === "preview") {
      frames.show(buffers?.[0]);
    } else if (msg.kind === "capture") {
      void capture.answer(msg);
    } else if (msg.kind === "reasoning") {
      overlay.showReasoning(msg);
    } else if (msg.kind === "answer") {
      overlay.showAnswer(msg);
    }
  }
  const unlisten = listen(model, [["msg:custom", onMessage]]);

  return () => {
    disposed = true;
    unlisten();
    for (const part of [keys, capture, camera, frames, overlay]) part.cleanup();
  };
}

// anywidget takes the default export; the named ones are for the unit tests (tests/browser/test_js_units.py).
export default { render };
export {
  RESOLUTIONS,
  SHAPE_COLORS,
  boxRect,
  containedRect,
  describeCameraError,
  drawableShapes,
  isTyping,
  labelColor,
  openCamera,
  paintShapes,
  pointAt,
  reasoningSummary,
  scaledSize,
};
