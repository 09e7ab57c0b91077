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

/**
 * The parts of anywidget's model this view uses.
 * @typedef {{
 *   get(name: string): any,
 *   set(name: string, value: any): void,
 *   save_changes(): void,
 *   send(content: object, callbacks?: object, buffers?: ArrayBuffer[]): void,
 *   on(event: string, handler: (...args: any[]) => void): void,
 *   off(event: string, handler?: (...args: any[]) => void): void,
 * }} Model
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
  const scale = maxEdge > 0 ? Math.min(1, maxEdge / Math.max(vw, vh)) : 1;
  const width = Math.max(1, Math.round(vw * scale));
  const height = Math.max(1, Math.round(vh * scale));
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
  /** @param {number} v @param {number} lo @param {number} hi */
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  /** @param {number} x */
  const toX = (x) => (mirror ? 1 - x : x) * width;
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
      const xa = toX(shape.x1);
      const xb = toX(shape.x2);
      // Inset by half the line: a box along the picture's edge keeps all four sides visible.
      const left = clamp(Math.min(xa, xb), half, width - half);
      const right = clamp(Math.max(xa, xb), half, width - half);
      const top = clamp(Math.min(shape.y1, shape.y2) * height, half, height - half);
      const bottom = clamp(Math.max(shape.y1, shape.y2) * height, half, height - half);
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
      const x = toX(shape.x);
      const y = shape.y * height;
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

/** @param {EventTarget | null} target */
function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

/**
 * @param {{ model: Model, el: HTMLElement }} ctx
 * @returns {() => void} cleanup
 */
function render({ model, el }) {
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
  const canvas = frameCanvas();

  /** @type {MediaStream | null} */
  let stream = null;
  let disposed = false;

  /**
   * Send to the kernel unless it is gone: after a kernel restart or shutdown the comm is dead and
   * ipywidgets throws ("Cannot send"); a late reply or note then has nobody to tell.
   * @param {Record<string, unknown>} content
   * @param {ArrayBuffer[]} [buffers]
   */
  function send(content, buffers) {
    if (disposed) return;
    try {
      model.send(content, undefined, buffers ?? []);
    } catch {
      // the kernel is gone: nothing to do
    }
  }
  let generation = 0; // bumps on every (re)start, so a slow old start cannot win
  let lastShownNote = -Infinity;

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
      if (disposed || mine !== generation) {
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
      if (!disposed && mine === generation) setState(...describeCameraError(error));
      throw error;
    }
  }

  /** True when frames come from the kernel (a file, stream, …), not from this browser's camera. */
  function kernelSource() {
    const source = model.get("source");
    return Boolean(source) && source !== "camera";
  }

  /** @type {Promise<void>} */
  let ready = Promise.resolve();

  function restart() {
    if (kernelSource()) return; // device and resolution belong to the camera
    ready = startCamera();
    ready.catch(() => {}); // the state badge already says what went wrong
  }

  // -- kernel-side source: draw the JPEG frames the kernel sends --------------------------------
  /** @type {DataView | ArrayBuffer | null} */
  let pendingPreview = null; // the newest frame not drawn yet; older ones are dropped
  let drawing = false;
  let drawnOnce = false;

  /** The kernel sets camera_state for its source too: "ended" (a file without loop) or "error". */
  function showKernelBadge() {
    if (!kernelSource()) return;
    const state = model.get("camera_state");
    const trouble = state === "ended" || state === "error";
    badge.dataset.state = trouble ? state : "kernel";
    const size = drawnOnce ? ` ${preview.width}×${preview.height}` : "";
    badge.textContent = `kernel source: ${model.get("source")}${size}${trouble ? ` (${state})` : ""}`;
  }

  async function drawPreviews() {
    drawing = true;
    try {
      while (pendingPreview && !disposed) {
        const blob = new Blob([pendingPreview], { type: "image/jpeg" });
        pendingPreview = null;
        /** @type {ImageBitmap} */
        let bitmap;
        try {
          bitmap = await createImageBitmap(blob);
        } catch {
          continue; // a frame that does not decode: keep showing the last good one
        }
        if (disposed || !kernelSource()) {
          bitmap.close();
          break;
        }
        const resized = preview.width !== bitmap.width || preview.height !== bitmap.height;
        if (preview.width !== bitmap.width) preview.width = bitmap.width;
        if (preview.height !== bitmap.height) preview.height = bitmap.height;
        /** @type {CanvasRenderingContext2D} */ (preview.getContext("2d")).drawImage(bitmap, 0, 0);
        if (resized) drawShapes(); // another aspect ratio moves the letterbox
        bitmap.close();
        drawnOnce = true;
        showKernelBadge();
      }
    } finally {
      drawing = false;
    }
  }

  /** @param {DataView | ArrayBuffer | undefined} buffer */
  function onPreview(buffer) {
    if (!buffer || !kernelSource()) return;
    pendingPreview = buffer;
    if (!drawing) void drawPreviews();
  }

  // -- boxes and points over the picture --------------------------------------------------------
  /** @type {Shape[]} */
  let shapes = [];
  let shapesSeq = -1;

  /** Lay the shapes canvas over the picture as shown now (letterbox included) and draw on it. */
  function drawShapes() {
    if (disposed) return;
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

  /** @param {number} seq @param {unknown} given the message's shapes (absent: none, clearing) */
  function setShapes(seq, given) {
    shapes = drawableShapes(given);
    shapesSeq = seq;
    drawShapes();
  }

  // The picture's box changes with the panel's width; its content with the camera's resolution.
  const resizeObserver = new ResizeObserver(() => drawShapes());
  resizeObserver.observe(root);
  resizeObserver.observe(video);
  resizeObserver.observe(preview);
  video.addEventListener("resize", drawShapes);

  /** Camera or kernel frames, as the `source` trait says (the kernel sets it at creation). */
  function applySource() {
    const kernel = kernelSource();
    video.hidden = kernel;
    preview.hidden = !kernel;
    drawShapes();
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
  applySource();

  function applyView() {
    const mirror = Boolean(model.get("mirror"));
    video.classList.toggle("rtvlm-mirrored", mirror);
    preview.classList.toggle("rtvlm-mirrored", mirror);
    overlay.hidden = !model.get("overlay");
    drawShapes();
  }
  applyView();

  /**
   * A fresh camera frame as JPEG: the message fields and the bytes. Throws when there is none.
   * @param {number} maxEdge
   * @returns {Promise<[Record<string, unknown>, ArrayBuffer]>}
   */
  async function takeFrame(maxEdge) {
    if (kernelSource()) throw new Error(`frames come from the kernel (${model.get("source")}), not this camera`);
    // A restart (device or resolution change) may begin while we wait: wait for the newest.
    for (let current = ready; ; current = ready) {
      await current;
      if (current === ready) break;
    }
    // An ended track leaves its last picture in the <video>: never send that as a fresh frame.
    if (stream?.getVideoTracks()[0]?.readyState !== "live") {
      throw new Error("the camera is not delivering video");
    }
    const frame = await grabJpeg(video, canvas, maxEdge, model.get("jpeg_quality"));
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

  /** @param {CaptureRequest} msg */
  async function answerCapture(msg) {
    try {
      const [fields, bytes] = await takeFrame(msg.max_edge ?? 0);
      send({ kind: "frame", seq: msg.seq, ...fields }, [bytes]);
    } catch (error) {
      send({ kind: "error", seq: msg.seq, message: cameraProblem(error) });
    }
  }

  let asks = 0;
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

  function showLive() {
    const live = Boolean(model.get("live"));
    runButton.replaceChildren(icon(live ? "stop" : "play"), live ? "Stop" : "Start");
    runButton.classList.toggle("mod-active", live);
    runButton.setAttribute("aria-pressed", String(live));
  }
  showLive();
  const onRunClick = () => send({ kind: "toggle_live" });
  const onSendClick = () => void sendOnce();
  runButton.addEventListener("click", onRunClick);
  sendButton.addEventListener("click", onSendClick);

  /** @param {KernelMessage} msg @param {(DataView | ArrayBuffer)[]} [buffers] */
  function onMessage(msg, buffers) {
    if (disposed || !msg || typeof msg !== "object") return;
    if (msg.kind === "preview") {
      onPreview(buffers?.[0]);
    } else if (msg.kind === "capture") {
      void answerCapture(msg);
    } else if (msg.kind === "reasoning") {
      const text = String(msg.text ?? "");
      const words = text.split(/\s+/).filter(Boolean).length;
      reasoning.hidden = !text;
      reasoningTitle.textContent = msg.final ? `Reasoning (${words} words)` : `Thinking… (${words} words)`;
      reasoningText.textContent = text; // model output is text, never HTML
    } else if (msg.kind === "answer") {
      const text = String(msg.text ?? "");
      overlay.textContent = text; // model output is text, never HTML
      answerBox.value = text;
      // Only whole answers carry shapes; a streamed part leaves the last answer's in place.
      if (msg.final) setShapes(msg.seq, msg.shapes);
      // Tell the kernel when a whole answer is on screen (the "display" phase of its timing), for
      // at most two answers a second: each note costs the kernel a message round, which at 30
      // answers a second shows in the frame rate.
      if (msg.final && performance.now() - lastShownNote >= 500) {
        lastShownNote = performance.now();
        requestAnimationFrame(() =>
          send({ kind: "shown", seq: msg.seq, shown_at_ms: performance.timeOrigin + performance.now() }),
        );
      }
    }
  }

  /** Space toggles live mode while focus is in this panel, but never while typing. */
  /** @param {KeyboardEvent} event */
  function onKey(event) {
    if (event.key !== " " || event.repeat || isTyping(event.target)) return;
    const panel = el.closest(".rtvlm-panel") ?? el;
    if (!(event.target instanceof Node) || !panel.contains(event.target)) return;
    event.preventDefault(); // no button "click", no page scroll
    event.stopPropagation(); // and not JupyterLab's command-mode shortcuts
    send({ kind: "toggle_live" });
  }

  const onDeviceChange = () => void listDevices().catch(() => {});
  // Every model listener, so that teardown removes exactly what was added.
  /** @type {[string, (...args: any[]) => void][]} */
  const listeners = [
    ["msg:custom", onMessage],
    ["change:device_id", restart],
    ["change:resolution", restart],
    ["change:mirror", applyView],
    ["change:overlay", applyView],
    ["change:shapes_visible", drawShapes],
    ["change:source", applySource],
    ["change:camera_state", showKernelBadge],
    ["change:live", showLive],
  ];
  for (const [event, handler] of listeners) model.on(event, handler);
  document.addEventListener("keydown", onKey, true);
  navigator.mediaDevices?.addEventListener?.("devicechange", onDeviceChange);

  return () => {
    disposed = true;
    generation++;
    for (const [event, handler] of listeners) model.off(event, handler);
    document.removeEventListener("keydown", onKey, true);
    navigator.mediaDevices?.removeEventListener?.("devicechange", onDeviceChange);
    stopStream();
    video.srcObject = null;
    resizeObserver.disconnect();
    video.removeEventListener("resize", drawShapes);
    runButton.removeEventListener("click", onRunClick);
    sendButton.removeEventListener("click", onSendClick);
    pendingPreview = null;
    shapes = [];
    shapesCanvas.width = shapesCanvas.height = 0;
    preview.width = preview.height = 0; // frees the canvas's pixels now, not at collection
  };
}

export default { render };
